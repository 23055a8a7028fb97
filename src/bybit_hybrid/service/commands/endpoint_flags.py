"""Flags shared by `stream`, `run` and friends: one endpoint of four, durations, the loop and
the WebSocket backend."""

from __future__ import annotations

import argparse
from typing import Any, get_args
from urllib.parse import urlsplit

from bybit_hybrid.service.settings import AppSettings, EventLoop, WsBackendChoice
from bybit_hybrid.transport.endpoints import REGIONS, Endpoints
from bybit_hybrid.transport.proxy import Proxy, resolve_proxy


def add_endpoint_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument(
        "--base-url", metavar="URL", help="a Bybit-compatible host, e.g. the simulator"
    )
    group.add_argument("--mainnet", action="store_true", help="api.bybit.com / stream.bybit.com")
    group.add_argument("--testnet", action="store_true", help="api-testnet / stream-testnet")
    group.add_argument(
        "--demo", action="store_true", help="demo trading: api-demo, stream-demo private socket"
    )
    parser.add_argument(
        "--allow-insecure",
        action="store_true",
        help="allow a plain http base URL on a non-loopback host (keys cross the network!)",
    )
    parser.add_argument(
        "--region",
        choices=list(REGIONS),
        help="mainnet hosts of a Bybit entity (default: $BYBIT_HYBRID_REGION or global)",
    )
    parser.add_argument(
        "--proxy",
        metavar="URL",
        help="proxy for REST and both sockets: http(s)://, socks5:// or socks5h://"
        "[user:pass@]host:port (default: $BYBIT_HYBRID_PROXY_URL)",
    )
    parser.add_argument(
        "--proxy-from-env",
        action="store_true",
        default=None,
        help="use HTTPS_PROXY / ALL_PROXY / NO_PROXY from the environment",
    )


def add_loop_flag(parser: argparse.ArgumentParser) -> None:
    """`--loop` and `--ws-backend`, merged into the `event_loop` and `ws_backend` settings
    (defaults: $BYBIT_HYBRID_EVENT_LOOP, $BYBIT_HYBRID_WS_BACKEND)."""
    parser.add_argument(
        "--loop",
        choices=get_args(EventLoop),
        help="event loop (default: $BYBIT_HYBRID_EVENT_LOOP or auto: uvloop when installed)",
    )
    parser.add_argument(
        "--ws-backend",
        choices=get_args(WsBackendChoice),
        help="WebSocket client (default: $BYBIT_HYBRID_WS_BACKEND or picows)",
    )


def endpoint_kwargs(
    args: argparse.Namespace, settings: AppSettings | None = None
) -> dict[str, object]:
    """Keyword arguments for the streams from the flags, then the settings (validated here)."""
    region = getattr(args, "region", None) or (settings.region if settings else None)
    kwargs: dict[str, object] = {
        "testnet": bool(args.testnet),
        "demo": bool(args.demo),
        "base_url": args.base_url,
        "allow_insecure": bool(args.allow_insecure),
        "region": None if region == "global" else region,
    }
    endpoints = Endpoints.select(**kwargs)  # type: ignore[arg-type]  # raises ConfigError early
    kwargs["proxy"] = _proxy(args, settings, endpoints)
    return kwargs


def _proxy(
    args: argparse.Namespace, settings: AppSettings | None, endpoints: Endpoints
) -> Proxy | None:
    url = getattr(args, "proxy", None)
    if url is None and settings is not None and settings.proxy_url is not None:
        url = settings.proxy_url.get_secret_value()
    from_env = getattr(args, "proxy_from_env", None)
    if from_env is None:
        from_env = bool(settings and settings.proxy_from_env)
    host = urlsplit(endpoints.rest_url).hostname
    return resolve_proxy(url, from_env=from_env, target_host=host)


def endpoint_line(kwargs: dict[str, Any], mode: str) -> str:
    """The start-up line: which exchange (and region), which hosts, proxy, mode (issue 18)."""
    endpoints = Endpoints.select(**{k: v for k, v in kwargs.items() if k != "proxy"})
    hosts = {
        "rest": urlsplit(endpoints.rest_url).netloc,
        "public": urlsplit(endpoints.public_ws_url).netloc,
        "private": urlsplit(endpoints.private_ws_url).netloc,
    }
    where = ", ".join(f"{name} {host}" for name, host in hosts.items())
    proxy = kwargs.get("proxy")
    if isinstance(proxy, Proxy):  # no credentials in the line
        where += f"; via proxy {proxy.scheme}://{proxy.host}:{proxy.port}"
    labels = {"demo": " (demo trading)", "testnet": " (testnet)"}
    label = " (REAL MONEY)" if endpoints.name.startswith("mainnet") else labels.get(endpoints.name)
    return f"endpoint {endpoints.name}{label or ''}: {where}; mode {mode}"


def positive_seconds(text: str) -> float:
    """argparse type for durations: a number of seconds above zero."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be > 0")
    return value
