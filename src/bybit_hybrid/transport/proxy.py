"""Outbound proxies for REST and both WebSockets: HTTP(S) CONNECT proxies and SOCKS5.

A `Proxy` keeps its credentials out of every repr, log line and error: `str(proxy)` is the URL
with the password replaced by `***`. HTTP(S) proxies go through aiohttp's own `proxy=` support
(CONNECT for https/wss targets); SOCKS5 goes through `aiohttp-socks`' connector. The standard
`HTTPS_PROXY`/`ALL_PROXY` variables are read only when the user opts in (`proxy_from_env`), and
`NO_PROXY` is honoured then.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import quote, unquote, urlsplit

import aiohttp
from aiohttp_socks import ProxyConnector

from bybit_hybrid.errors import ConfigError

HTTP_SCHEMES: Final = frozenset({"http", "https"})
SOCKS_SCHEMES: Final = frozenset({"socks5", "socks5h"})
ENV_NAMES: Final = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")


@dataclass(frozen=True, slots=True)
class Proxy:
    """One proxy URL, validated; `user`/`password` come from its userinfo (percent-decoded)."""

    scheme: str
    host: str
    port: int
    user: str | None = None
    password: str | None = field(default=None, repr=False)

    @classmethod
    def from_url(cls, url: str, *, source: str = "proxy_url") -> Proxy:
        try:
            parts = urlsplit(url.strip())
            port = parts.port
        except ValueError:
            raise ConfigError(f"{source}: not a proxy URL ({_masked_text(url)})") from None
        scheme = parts.scheme.lower()
        if scheme not in HTTP_SCHEMES | SOCKS_SCHEMES:
            raise ConfigError(
                f"{source}: scheme {scheme or '(none)'!r} is not one of http, https, socks5, "
                f"socks5h ({_masked_text(url)})"
            )
        if not parts.hostname:
            raise ConfigError(f"{source}: no host in {_masked_text(url)}")
        default_port = {"http": 80, "https": 443}.get(scheme, 1080)
        user = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password else None
        return cls(scheme, parts.hostname, port or default_port, user, password)

    @property
    def is_socks(self) -> bool:
        return self.scheme in SOCKS_SCHEMES

    def url(self, *, with_credentials: bool = True) -> str:
        """The URL to hand to a client library (credentials only where it needs them)."""
        auth = ""
        if self.user is not None and with_credentials:
            secret = "" if self.password is None else ":" + quote(self.password, safe="")
            auth = quote(self.user, safe="") + secret + "@"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{auth}{host}:{self.port}"

    def __str__(self) -> str:
        user = "" if self.user is None else f"{self.user}:***@"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{user}{host}:{self.port}"

    def request_kwargs(self) -> dict[str, Any]:
        """Per-request aiohttp arguments for an HTTP(S) proxy (SOCKS lives in the connector)."""
        if self.is_socks:
            return {}
        kwargs: dict[str, Any] = {"proxy": self.url(with_credentials=False)}
        if self.user is not None:
            token = base64.b64encode(f"{self.user}:{self.password or ''}".encode()).decode()
            kwargs["proxy_headers"] = {"Proxy-Authorization": f"Basic {token}"}
        return kwargs

    def forward_headers(self, url: str) -> dict[str, str]:
        """Credentials for a plain http:// or ws:// request, which an HTTP proxy forwards rather
        than tunnels, so it reads them from the request itself. Never for https/wss: inside the
        CONNECT tunnel they would reach the exchange."""
        if url.startswith(("http://", "ws://")):
            headers: dict[str, str] = self.request_kwargs().get("proxy_headers", {})
            return headers
        return {}

    def new_session(self) -> aiohttp.ClientSession:
        """A session whose connections go through this proxy when it is SOCKS5."""
        if not self.is_socks:
            return aiohttp.ClientSession()
        connector = ProxyConnector.from_url(self.url(), rdns=self.rdns)
        return aiohttp.ClientSession(connector=connector)

    @property
    def rdns(self) -> bool:
        """socks5h resolves names at the proxy (the host may not resolve locally)."""
        return self.scheme == "socks5h"


def resolve_proxy(
    proxy_url: str | None,
    *,
    from_env: bool = False,
    target_host: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Proxy | None:
    """The proxy to use: an explicit URL wins; else the environment when the user opted in."""
    if proxy_url:
        return Proxy.from_url(proxy_url)
    if not from_env:
        return None
    env = os.environ if environ is None else environ
    if target_host is not None and _no_proxy(
        target_host, env.get("NO_PROXY", env.get("no_proxy", ""))
    ):
        return None
    for name in ENV_NAMES:
        value = env.get(name)
        if value:
            return Proxy.from_url(value, source=name)
    return None


def session_for(proxy: Proxy | None) -> aiohttp.ClientSession:
    return aiohttp.ClientSession() if proxy is None else proxy.new_session()


def _no_proxy(host: str, no_proxy: str) -> bool:
    """NO_PROXY as curl reads it: `*`, or comma-separated host names / domain suffixes."""
    host = host.lower().rstrip(".")
    for entry in (e.strip().lower().lstrip(".") for e in no_proxy.split(",")):
        if entry == "*" or (entry and (host == entry or host.endswith("." + entry))):
            return True
    return False


def _masked_text(url: str) -> str:
    """A URL with any userinfo password replaced, for error messages about a bad URL."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    userinfo, _, host = rest.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"
