"""`bybit-hybrid run`: the position stream plus unified protection (trailing stop, aged monitor).

With `--metrics-port P` (or `BYBIT_HYBRID_METRICS_PORT`) it serves /metrics, /health and /status
(docs/operations.md) and prints `metrics on http://HOST:PORT` on stdout. Settings come from
`BYBIT_HYBRID_*` / `.env` / `--config FILE` (see docs/protection.md); the
trail and aged state lives in `state_db`, so a restart resumes every trail where it was.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from pathlib import Path
from typing import Any

from bybit_hybrid.errors import ConfigError
from bybit_hybrid.protection.unified import UnifiedProtection
from bybit_hybrid.protocol.hybrid import CoreEvent, RestFailed
from bybit_hybrid.protocol.session import AuthFailed
from bybit_hybrid.service.commands.endpoint_flags import (
    add_endpoint_flags,
    add_loop_flag,
    endpoint_kwargs,
    positive_seconds,
)
from bybit_hybrid.service.loop import run_loop
from bybit_hybrid.service.output import say
from bybit_hybrid.service.settings import AppSettings, load_keys, load_settings
from bybit_hybrid.service.stack import RunStack
from bybit_hybrid.transport.errors import BybitError

HELP = "stream positions and protect them: trailing stop-loss and aged-position exits"
STATUS_EVERY_S = 60.0

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_endpoint_flags(parser)
    parser.add_argument("--duration", type=positive_seconds, metavar="S", help="stop after S s")
    parser.add_argument("--config", type=Path, metavar="FILE", help="a TOML settings file")
    parser.add_argument(
        "--metrics-port",
        type=int,
        metavar="P",
        help="serve /metrics, /health and /status on this port (0: any free port; "
        "default: $BYBIT_HYBRID_METRICS_PORT, else off)",
    )
    add_loop_flag(parser)


def run(args: argparse.Namespace) -> int:
    settings = load_settings(
        args.config,
        {"metrics_port": args.metrics_port, "event_loop": args.loop, "ws_backend": args.ws_backend},
    )
    kwargs = endpoint_kwargs(args, settings)
    api_key, api_secret = load_keys()
    return run_loop(_run(settings, api_key, api_secret, kwargs, args.duration), settings.event_loop)


async def _run(
    settings: AppSettings,
    api_key: str,
    api_secret: str,
    kwargs: dict[str, Any],
    duration_s: float | None,
) -> int:
    done = asyncio.Event()
    fatal: list[str] = []

    def watch(event: CoreEvent) -> None:
        if isinstance(event, AuthFailed):
            fatal.append(f"Bybit rejected the API key on the private stream: {event.ret_msg}")
        elif isinstance(event, RestFailed) and event.permanent:
            fatal.append(f"Bybit rejected the API key: {event.error}")
        if fatal:
            done.set()

    stack = RunStack(settings, api_key, api_secret, kwargs, listeners=(watch,))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, done.set)
    reporter: asyncio.Task[None] | None = None
    try:
        await stack.start(metrics_port=settings.metrics_port)
        if stack.server is not None:
            say(f"metrics on {stack.server.url}")
        log.info("protecting positions (state in %s, mode %s)", settings.state_db, settings.mode)
        reporter = asyncio.create_task(_report(stack.protection), name="run-status")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), duration_s)
    except BybitError as exc:
        fatal.append(f"could not start protection: {exc}")
    except OSError as exc:
        fatal.append(f"could not serve metrics on port {settings.metrics_port}: {exc}")
    finally:
        if reporter is not None:
            reporter.cancel()
        await stack.stop()
        _log_status(stack.protection)
    if fatal:
        raise ConfigError(fatal[0])
    return 0


async def _report(protection: UnifiedProtection) -> None:
    while True:
        await asyncio.sleep(STATUS_EVERY_S)
        _log_status(protection)


def _log_status(protection: UnifiedProtection) -> None:
    status = protection.status()
    t, a = status["trailing"], status["aged"]
    log.info(
        "protection: %d positions, %d stops sent (%d not modified, %d retries, %d failures), "
        "%d trailing closes, %d aged closes, %d monitor-only decisions",
        len(status["positions"]),
        t["stops_sent"],
        t["not_modified"],
        t["retries"],
        t["failures"],
        t["closes"],
        a["closes"],
        t["monitor_only"] + a["monitor_only"],
    )
