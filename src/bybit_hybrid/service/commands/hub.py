"""`bybit-hybrid hub`: the market-data hub of the scale-out bus (docs/bus.md), no keys.

It subscribes `tickers.{SYMBOL}` for the union of what live account workers demand and
publishes every mark change to `bybit.marks.{SYMBOL}`. Run two for hot-hot redundancy.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from pathlib import Path

from nats.errors import Error as NatsError

from bybit_hybrid.bus.hub import MarkHub
from bybit_hybrid.errors import ConfigError
from bybit_hybrid.service.commands.bus_flags import add_bus_flags, bus_overrides
from bybit_hybrid.service.commands.endpoint_flags import (
    add_endpoint_flags,
    add_loop_flag,
    endpoint_kwargs,
    positive_seconds,
)
from bybit_hybrid.service.hub_http import HubServer
from bybit_hybrid.service.loop import run_loop
from bybit_hybrid.service.output import say
from bybit_hybrid.service.settings import load_settings
from bybit_hybrid.service.streams import bus_settings
from bybit_hybrid.transport.endpoints import Endpoints
from bybit_hybrid.transport.ws import AnyWsBackend, ws_backend_named

HELP = "the scale-out market-data hub: tickers for every worker's demand, marks to NATS"
STATUS_EVERY_S = 60.0

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_endpoint_flags(parser)
    add_bus_flags(parser, worker=False)
    parser.add_argument("--hub-id", metavar="NAME", help="this hub's name (default: host-pid)")
    parser.add_argument("--duration", type=positive_seconds, metavar="S", help="stop after S s")
    parser.add_argument("--config", type=Path, metavar="FILE", help="a TOML settings file")
    parser.add_argument(
        "--status-port",
        type=int,
        metavar="P",
        help="serve /health and /status (JSON) on 127.0.0.1:P (0: any free port)",
    )
    add_loop_flag(parser)


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args.config, {**bus_overrides(args), "event_loop": args.loop})
    bus = bus_settings(settings)
    assert bus is not None  # --bus is required
    kwargs = endpoint_kwargs(args, settings)
    proxy = kwargs.pop("proxy")
    endpoints = Endpoints.select(**kwargs)  # type: ignore[arg-type]
    # picows (the product's default) unless a proxy or `ws_backend` says aiohttp.
    ws = ws_backend_named(settings.ws_backend, proxy=proxy)  # type: ignore[arg-type]
    hub = MarkHub(endpoints, bus, hub_id=args.hub_id, ws_backend=ws)
    if args.status_port is not None and not 0 <= args.status_port <= 65535:
        raise ConfigError(f"--status-port {args.status_port} is not a port (0..65535)")
    server = None if args.status_port is None else HubServer(hub, port=args.status_port)
    return run_loop(_run(hub, ws, server, args.duration), settings.event_loop)


async def _run(
    hub: MarkHub, ws: AnyWsBackend, server: HubServer | None, duration_s: float | None
) -> int:
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, done.set)
    try:
        try:
            await hub.start()
        except (NatsError, OSError, TimeoutError) as exc:
            raise ConfigError(f"bus {hub.bus.masked()}: cannot connect: {exc}") from None
        if server is not None:
            try:
                await server.start()
            except OSError as exc:
                raise ConfigError(f"--status-port: {exc.strerror or exc}") from None
            say(f"status on {server.url}")
        reporter = asyncio.create_task(_report(hub), name="hub-status")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), duration_s)
        reporter.cancel()
    finally:
        if server is not None:
            await server.stop()
        await hub.stop()
        await ws.aclose()
        log.info("hub stopped: %s", hub.status())
    return 0


async def _report(hub: MarkHub) -> None:
    while True:
        await asyncio.sleep(STATUS_EVERY_S)
        log.info("hub: %s", hub.status())
