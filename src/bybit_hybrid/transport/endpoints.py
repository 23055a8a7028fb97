"""Where to connect: REST and WebSocket URLs for mainnet, testnet, demo or a local base URL."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from bybit_hybrid.errors import ConfigError

PUBLIC_LINEAR_PATH = "/v5/public/linear"
PRIVATE_PATH = "/v5/private"


@dataclass(frozen=True, slots=True)
class Endpoints:
    """The three URLs one stream needs. Demo trading has only a private socket of its own:
    its public data is mainnet's (BYBIT_V5.md §1.1)."""

    name: str
    rest_url: str
    public_ws_url: str
    private_ws_url: str

    @classmethod
    def mainnet(cls) -> Endpoints:
        return cls(
            "mainnet",
            "https://api.bybit.com",
            "wss://stream.bybit.com" + PUBLIC_LINEAR_PATH,
            "wss://stream.bybit.com" + PRIVATE_PATH,
        )

    @classmethod
    def testnet(cls) -> Endpoints:
        return cls(
            "testnet",
            "https://api-testnet.bybit.com",
            "wss://stream-testnet.bybit.com" + PUBLIC_LINEAR_PATH,
            "wss://stream-testnet.bybit.com" + PRIVATE_PATH,
        )

    @classmethod
    def demo(cls) -> Endpoints:
        return cls(
            "demo",
            "https://api-demo.bybit.com",
            "wss://stream.bybit.com" + PUBLIC_LINEAR_PATH,
            "wss://stream-demo.bybit.com" + PRIVATE_PATH,
        )

    @classmethod
    def from_base_url(cls, base_url: str, *, allow_insecure: bool = False) -> Endpoints:
        """`http://127.0.0.1:PORT` → REST there, sockets at ws://127.0.0.1:PORT/v5/....

        Plain http/ws is refused for a non-loopback host unless `allow_insecure` says otherwise:
        keys and signatures must not cross a network in the clear by accident.
        """
        parts = urlsplit(base_url.rstrip("/"))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"base url {base_url!r} must look like http(s)://HOST[:PORT]")
        if parts.scheme == "http" and not allow_insecure and not is_loopback(parts.hostname):
            raise ConfigError(
                f"base url {base_url!r} uses plain http for a non-loopback host; use https"
            )
        ws_scheme = "wss" if parts.scheme == "https" else "ws"
        root = f"{parts.scheme}://{parts.netloc}"
        ws_root = f"{ws_scheme}://{parts.netloc}"
        return cls("custom", root, ws_root + PUBLIC_LINEAR_PATH, ws_root + PRIVATE_PATH)

    @classmethod
    def select(
        cls,
        *,
        testnet: bool = False,
        demo: bool = False,
        base_url: str | None = None,
        allow_insecure: bool = False,
    ) -> Endpoints:
        chosen = [
            name
            for name, on in (("testnet", testnet), ("demo", demo), ("base_url", base_url))
            if on
        ]
        if len(chosen) > 1:
            raise ConfigError(f"choose one endpoint, not {' and '.join(chosen)}")
        if base_url:
            return cls.from_base_url(base_url, allow_insecure=allow_insecure)
        if testnet:
            return cls.testnet()
        return cls.demo() if demo else cls.mainnet()


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
