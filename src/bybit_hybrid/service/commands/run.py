"""`bybit-hybrid run`: the position stream plus unified protection (trailing stop, aged monitor).

With `--metrics-port P` (or `BYBIT_HYBRID_METRICS_PORT`) it serves /metrics, /health and /status
(docs/operations.md) and prints `metrics on http://HOST:PORT` on stdout. Settings come from
`BYBIT_HYBRID_*` / `.env` / `--config FILE` (see docs/protection.md); the trail and aged
state lives in `state_db` (default: the per-user data directory, `service/paths.py`), so a
restart resumes every trail where it was.
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
from bybit_hybrid.protection.plan import plan_line
from bybit_hybrid.protection.unified import UnifiedProtection
from bybit_hybrid.protocol.hybrid import CoreEvent, Reconciled
from bybit_hybrid.service.auth_watch import AuthWatch
from bybit_hybrid.service.commands.bus_flags import add_bus_flags, bus_overrides
from bybit_hybrid.service.commands.endpoint_flags import (
    add_endpoint_flags,
    add_loop_flag,
    endpoint_kwargs,
    endpoint_line,
    positive_seconds,
)
from bybit_hybrid.service.keys import load_keys
from bybit_hybrid.service.loop import run_loop
from bybit_hybrid.service.output import say
from bybit_hybrid.service.settings import AppSettings, load_settings
from bybit_hybrid.service.stack import RunStack
from bybit_hybrid.service.streams import check_bus
from bybit_hybrid.transport.errors import BybitError

HELP = "stream positions and protect them: trailing stop-loss and aged-position exits"
STATUS_EVERY_S = 60.0
# How long the start-up plan waits for the protection to take in the first snapshot.
PLAN_SETTLE_S = 5.0
PLAN_POLL_S = 0.05

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
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="compute and log every protection decision, send nothing to the exchange "
        "(setting protection_dry_run)",
    )
    add_bus_flags(parser, worker=True)
    add_loop_flag(parser)


def run(args: argparse.Namespace) -> int:
    flags = {
        "metrics_port": args.metrics_port,
        "event_loop": args.loop,
        "ws_backend": args.ws_backend,
        "protection_dry_run": True if args.dry_run else None,
    }
    settings = load_settings(args.config, {**flags, **bus_overrides(args)})
    check_bus(settings)
    kwargs = endpoint_kwargs(args, settings)
    api_key, api_secret = load_keys()
    log.info("%s", endpoint_line(kwargs, settings.mode))
    return run_loop(_run(settings, api_key, api_secret, kwargs, args.duration), settings.event_loop)


async def _run(
    settings: AppSettings,
    api_key: str,
    api_secret: str,
    kwargs: dict[str, Any],
    duration_s: float | None,
) -> int:
    done = asyncio.Event()
    watch = AuthWatch(settings, done)
    fatal = watch.fatal
    bootstrapped = asyncio.Event()

    def on_event(event: CoreEvent) -> None:
        if isinstance(event, Reconciled):
            bootstrapped.set()

    stack = RunStack(settings, api_key, api_secret, kwargs, listeners=(watch, on_event))
    watch.alerts = stack.metrics.on_event
    stack.extra_status["auth"] = watch.status
    _stop_on_signals(done)
    tasks: list[asyncio.Task[None]] = []
    try:
        await _start(stack, settings)
        tasks.append(asyncio.create_task(_report(stack.protection), name="run-status"))
        tasks.append(asyncio.create_task(watch.loop(), name="run-auth-watch"))
        tasks.append(asyncio.create_task(_summarise(stack, bootstrapped), name="run-plan"))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), duration_s)
    except BybitError as exc:
        fatal.append(f"could not start protection: {exc}")
    except OSError as exc:
        fatal.append(f"could not serve metrics on port {settings.metrics_port}: {exc}")
    finally:
        for task in tasks:
            task.cancel()
        await stack.stop()
        _log_status(stack.protection)
    if fatal:
        raise ConfigError(fatal[0])
    return 0


def _stop_on_signals(done: asyncio.Event) -> None:
    """SIGINT and SIGTERM end the run cleanly (where the loop supports signal handlers)."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, done.set)


async def _start(stack: RunStack, settings: AppSettings) -> None:
    await stack.start(metrics_port=settings.metrics_port)
    if stack.server is not None:
        say(f"metrics on {stack.server.url}")
    log.info("protecting positions (state in %s, mode %s)", stack.state_db, settings.mode)
    if settings.protection_dry_run:
        log.warning("dry run: protection decisions are logged, nothing is sent")


async def _summarise(stack: RunStack, bootstrapped: asyncio.Event) -> None:
    """Once the first snapshot is in: what protection will do to each open position."""
    await bootstrapped.wait()
    await asyncio.sleep(0)  # the router hands the bootstrap to the consumers first
    for _ in range(int(PLAN_SETTLE_S / PLAN_POLL_S)):  # idle() has no event to wait on
        if stack.protection.idle():
            break
        await asyncio.sleep(PLAN_POLL_S)
    plan = stack.protection.plan()
    dry = " (dry run: nothing is sent)" if stack.settings.protection_dry_run else ""
    log.info("protection plan for %d open positions%s:", len(plan), dry)
    for row in plan:
        log.info("plan: %s", plan_line(row))


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
