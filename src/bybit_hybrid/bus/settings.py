"""Where the bus is and how it behaves: server URLs, credentials/TLS, TTLs, staleness bound."""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit


@dataclass(frozen=True, slots=True)
class BusSettings:
    """`url` is one or more `nats://` / `tls://` servers separated by commas; credentials go
    in `creds_file` (a NATS .creds file), `token`, or `user`/`password`, never on the bus."""

    url: str = field(repr=False)  # may hold user:password; `masked()` is what is shown
    creds_file: Path | None = None
    token: str | None = field(default=None, repr=False)
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: Path | None = None
    # A client certificate for servers that verify clients (mutual TLS), PEM; its private key
    # in `key_file`, or in the same PEM file when `key_file` is None.
    cert_file: Path | None = None
    key_file: Path | None = field(default=None, repr=False)
    # A worker's demand entry lives this long without a heartbeat (the KV bucket's TTL).
    demand_ttl_s: float = 30.0
    # Marks older than this on a hub that is gone: the worker falls back to its own socket.
    stale_after_s: float = 5.0
    heartbeat_s: float = 1.0
    # How often a hub re-reads the demand bucket (adds are seen this late at worst).
    demand_refresh_s: float = 1.0
    # JetStream drops a message whose id it saw this recently (hot-hot hubs, worker restarts).
    duplicate_window_s: float = 120.0
    connect_timeout_s: float = 2.0
    # Copies JetStream keeps of each stream and the bucket: 3 on a cluster of 3 (a node may
    # die), 1 on a single server (the server refuses more replicas than it has nodes).
    replicas: int = 1

    def __post_init__(self) -> None:
        servers = self.servers()
        for server in servers:
            scheme = urlsplit(server).scheme
            if scheme not in ("nats", "tls", "ws", "wss"):
                raise ValueError(f"bus url {mask_url(server)!r}: scheme must be nats:// or tls://")
        if not self.heartbeat_s * 3 <= self.demand_ttl_s:
            raise ValueError(
                f"demand_ttl_s {self.demand_ttl_s} must be at least 3x heartbeat_s "
                f"{self.heartbeat_s}, or a live worker's demand could expire"
            )
        if not 1 <= self.replicas <= 5:
            raise ValueError(f"replicas must be 1..5 (JetStream's limit), got {self.replicas}")
        self.tls_context()  # a missing or bad CA, certificate or key file fails here, named
        if not self.heartbeat_s < self.stale_after_s:
            raise ValueError(
                f"stale_after_s {self.stale_after_s} must exceed heartbeat_s {self.heartbeat_s}"
            )

    def __repr__(self) -> str:
        key = "" if self.key_file is None else ", key_file='***'"
        return (
            f"BusSettings(url={self.masked()!r}, creds_file={self.creds_file!r}, "
            f"ca_file={self.ca_file!r}, cert_file={self.cert_file!r}{key})"
        )

    def servers(self) -> list[str]:
        servers = [s.strip() for s in self.url.split(",") if s.strip()]
        if not servers:
            raise ValueError("bus url is empty")
        return servers

    def masked(self) -> str:
        """The servers for logs and status: any user:password in a URL is masked."""
        return ",".join(mask_url(s) for s in self.servers())

    def connect_options(self) -> dict[str, Any]:
        """Keyword arguments for `nats.connect` (secrets included: never log this)."""
        options: dict[str, Any] = {
            "servers": self.servers(),
            "connect_timeout": self.connect_timeout_s,
            "max_reconnect_attempts": -1,
            "reconnect_time_wait": min(1.0, self.stale_after_s / 4),
            "allow_reconnect": True,
        }
        if self.creds_file is not None:
            options["user_credentials"] = str(self.creds_file)
        if self.token is not None:
            options["token"] = self.token
        if self.user is not None:
            options["user"] = self.user
            options["password"] = self.password
        tls = self.tls_context()
        if tls is not None:
            options["tls"] = tls
        return options

    def tls_context(self) -> ssl.SSLContext | None:
        """The client TLS context of `ca_file` / `cert_file` + `key_file` (None: neither set;
        a `tls://` URL then uses the system's CAs). A bad file is a `ValueError` naming it."""
        if self.key_file is not None and self.cert_file is None:
            raise ValueError("bus TLS: key_file needs cert_file (the certificate it belongs to)")
        if self.ca_file is None and self.cert_file is None:
            return None
        try:
            context = ssl.create_default_context(
                cafile=None if self.ca_file is None else str(self.ca_file)
            )
        except OSError as exc:
            raise ValueError(f"bus TLS: CA file {str(self.ca_file)!r}: {_why(exc)}") from None
        if self.cert_file is not None:
            key = None if self.key_file is None else str(self.key_file)
            try:
                context.load_cert_chain(str(self.cert_file), key)
            except OSError as exc:
                # The key file's contents never go into the message: only the paths.
                with_key = "" if key is None else f" with key {key!r}"
                raise ValueError(
                    f"bus TLS: certificate {str(self.cert_file)!r}{with_key}: {_why(exc)}"
                ) from None
        return context


def _why(exc: OSError) -> str:
    if isinstance(exc, ssl.SSLError):  # a subclass of OSError, with its own reason
        return str(exc.reason or exc)
    return str(exc.strerror or exc)


def mask_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None and parts.username is None:
        return url
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit((parts.scheme, f"***@{host}{port}", parts.path, parts.query, ""))
