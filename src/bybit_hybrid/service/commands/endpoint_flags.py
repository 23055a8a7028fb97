"""Flags shared by `stream`, `run` and friends: one endpoint of four, durations, the loop and
the WebSocket backend."""

from __future__ import annotations

import argparse
from typing import get_args

from bybit_hybrid.service.settings import EventLoop, WsBackendChoice
from bybit_hybrid.transport.endpoints import Endpoints


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


def endpoint_kwargs(args: argparse.Namespace) -> dict[str, object]:
    """Keyword arguments for `BybitHybridStream` from the parsed flags (validated here)."""
    kwargs: dict[str, object] = {
        "testnet": bool(args.testnet),
        "demo": bool(args.demo),
        "base_url": args.base_url,
        "allow_insecure": bool(args.allow_insecure),
    }
    Endpoints.select(**kwargs)  # type: ignore[arg-type]  # raises ConfigError early
    return kwargs


def positive_seconds(text: str) -> float:
    """argparse type for durations: a number of seconds above zero."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be > 0")
    return value
