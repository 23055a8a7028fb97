"""Where to connect: REST and WebSocket URLs for mainnet, testnet, demo or a local base URL."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from bybit_hybrid.errors import ConfigError

PUBLIC_LINEAR_PATH = "/v5/public/linear"
PRIVATE_PATH = "/v5/private"

# Mainnet hosts by region: (REST host, stream host). Bybit's regional entities serve their
# users on their own domains (BYBIT_V5.md §1.1, §1.3); `bytick` is the alternate global domain.
# Keys belong to one entity: a key of bybit.eu is rejected (10003) on api.bybit.com.
REGIONS: Final[dict[str, tuple[str, str]]] = {
    "global": ("api.bybit.com", "stream.bybit.com"),
    "bytick": ("api.bytick.com", "stream.bytick.com"),
    "eu": ("api.bybit.eu", "stream.bybit.eu"),
    "nl": ("api.bybit.nl", "stream.bybit.nl"),
    "tr": ("api.bybit.tr", "stream.bybit.tr"),
    "kz": ("api.bybit.kz", "stream.bybit.kz"),
    "ae": ("api.bybit.ae", "stream.bybit.ae"),
    "id": ("api.bybit.id", "stream.bybit.id"),
    "ge": ("api.bybitgeorgia.ge", "stream.bybitgeorgia.ge"),
    "jp": ("api.manepa.jp", "stream.manepa.jp"),
}


@dataclass(frozen=True, slots=True)
class Endpoints:
    """The three URLs one stream needs. Demo trading has only a private socket of its own:
    its public data is mainnet's (BYBIT_V5.md §1.1)."""

    name: str
    rest_url: str
    public_ws_url: str
    private_ws_url: str

    @classmethod
    def mainnet(cls, region: str = "global") -> Endpoints:
        """Mainnet for `region` (one of `REGIONS`); the name says which, e.g. `mainnet-eu`."""
        try:
            rest_host, stream_host = REGIONS[region]
        except KeyError:
            raise ConfigError(f"region {region!r} is not one of {', '.join(REGIONS)}") from None
        return cls(
            "mainnet" if region == "global" else f"mainnet-{region}",
            f"https://{rest_host}",
            f"wss://{stream_host}" + PUBLIC_LINEAR_PATH,
            f"wss://{stream_host}" + PRIVATE_PATH,
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
        region: str | None = None,
    ) -> Endpoints:
        """One of mainnet (by `region`), testnet, demo or a base URL; a region is mainnet's."""
        chosen = [
            name
            for name, on in (("testnet", testnet), ("demo", demo), ("base_url", base_url))
            if on
        ]
        if len(chosen) > 1:
            raise ConfigError(f"choose one endpoint, not {' and '.join(chosen)}")
        if region not in (None, "global") and chosen:
            raise ConfigError(
                f"region {region!r} is for mainnet; {chosen[0]} has no regional hosts"
            )
        if base_url:
            return cls.from_base_url(base_url, allow_insecure=allow_insecure)
        if testnet:
            return cls.testnet()
        return cls.demo() if demo else cls.mainnet(region or "global")


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
