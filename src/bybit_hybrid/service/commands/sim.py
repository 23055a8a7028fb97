"""`bybit-hybrid sim`: run the embedded Bybit V5 simulator until Ctrl-C, SIGTERM or --duration."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys

from bybit_hybrid.service.errors import UsageError
from bybit_hybrid.service.output import say
from bybit_hybrid.sim.accounts import MAX_ACCOUNTS
from bybit_hybrid.sim.scenarios import SCENARIOS
from bybit_hybrid.sim.server import DEMO_API_KEY, DEMO_API_SECRET, SimConfig, SimServer
from bybit_hybrid.sim.trading_faults import parse_fault_spec
from bybit_hybrid.transport.endpoints import is_loopback

HELP = "run the embedded Bybit V5 simulator"
log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", default="0", help="TCP port, 0 picks a free one (default 0)")
    parser.add_argument("--symbols", default="10", help="number of symbols (default 10)")
    parser.add_argument("--positions", default="0", help="positions open at start (default 0)")
    parser.add_argument("--rate", default="10", help="ticker updates per second (default 10)")
    parser.add_argument("--seed", default="1", help="random seed for the price walk (default 1)")
    parser.add_argument(
        "--accounts",
        default="1",
        help="accounts, each with its own demo key pair, positions and rate limits; one shared "
        "market (default 1)",
    )
    parser.add_argument("--api-key", default=None, help="accepted API key (default: demo key)")
    parser.add_argument("--api-secret", default=None, help="accepted API secret (default: demo)")
    parser.add_argument(
        "--scenario", default="quiet", help=f"script to run: {', '.join(SCENARIOS)} (default quiet)"
    )
    parser.add_argument("--duration", default=None, help="stop after this many seconds")
    parser.add_argument(
        "--tick-slices",
        default="1",
        help="spread each tick over N evenly spaced slices, each symbol in one (default 1: "
        "every symbol's update in one burst)",
    )
    parser.add_argument(
        "--trading-fault",
        action="append",
        default=[],
        metavar="SPEC",
        help="arm a trading fault at start, repeatable: trading-stop:10006,seconds=30 | "
        "order:timeout,count=2 | reply-delay:trading-stop:500,count=3 | partial-fill:0.5,count=1 "
        "| hand-stop:5,count=1 (modes: 10006 10001_zero 10001_side 10002 10016 110017 timeout "
        "lost_reply; see docs/simulator.md)",
    )
    parser.add_argument(
        "--random-phases",
        action="store_true",
        help="with --tick-slices N: each symbol ticks in a random slice (independent phases) "
        "instead of slice i %% N",
    )
    parser.add_argument(
        "--stamp-send-us",
        action="store_true",
        help="benchmark-only: ticker data carries simSendUs, the µs epoch time of the socket write",
    )


def _int(args: argparse.Namespace, attr: str, low: int, high: int) -> int:
    raw, name = getattr(args, attr), attr.replace("_", "-")
    try:
        value = int(raw)
    except ValueError:
        raise UsageError(f"--{name} must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise UsageError(f"--{name} must be between {low} and {high}, got {value}")
    return value


def _positive_float(raw: str, flag: str, high: float) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise UsageError(f"--{flag} must be a number, got {raw!r}") from None
    if not 0 < value <= high:
        raise UsageError(f"--{flag} must be in (0, {high:g}], got {raw}")
    return value


def build_config(args: argparse.Namespace) -> SimConfig:
    """Validates the flags into a SimConfig; raises UsageError naming the bad flag."""
    symbols = _int(args, "symbols", 1, 100_000)
    positions = _int(args, "positions", 0, symbols)
    if (args.api_key is None) != (args.api_secret is None):
        raise UsageError("--api-key and --api-secret must be given together")
    if args.api_key == "" or args.api_secret == "":
        raise UsageError("--api-key and --api-secret must be non-empty")
    if args.scenario not in SCENARIOS:
        raise UsageError(f"--scenario must be one of {', '.join(SCENARIOS)}, got {args.scenario!r}")
    rate_hz = _positive_float(args.rate, "rate", 1000)
    tick_slices = _int(args, "tick_slices", 1, 1000)
    if rate_hz * tick_slices > 10_000:
        raise UsageError(
            f"--rate times --tick-slices must be at most 10000, got {rate_hz * tick_slices:g}"
        )
    specs = tuple(getattr(args, "trading_fault", None) or ())
    for spec in specs:
        try:
            parse_fault_spec(spec)
        except ValueError as exc:
            raise UsageError(f"--trading-fault: {exc}") from None
    return SimConfig(
        trading_faults=specs,
        accounts=_int(args, "accounts", 1, MAX_ACCOUNTS),
        symbols=symbols,
        positions=positions,
        rate_hz=rate_hz,
        seed=_int(args, "seed", 0, 2**63),
        host=args.host,
        port=_int(args, "port", 0, 65535),
        api_key=args.api_key or DEMO_API_KEY,
        api_secret=args.api_secret or DEMO_API_SECRET,
        scenario=args.scenario,
        stamp_send_us=bool(getattr(args, "stamp_send_us", False)),
        tick_slices=tick_slices,
        random_phases=bool(getattr(args, "random_phases", False)),
    )


def run(args: argparse.Namespace) -> int:
    config = build_config(args)
    duration_s = None if args.duration is None else _positive_float(args.duration, "duration", 1e9)
    if not is_loopback(config.host):
        log.warning(
            "sim: binding %s, which is not loopback; anyone who can reach it can use it",
            config.host,
        )
    asyncio.run(_serve(config, duration_s))
    return 0


async def _serve(config: SimConfig, duration_s: float | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    async with SimServer(config) as sim:
        say(f"listening on {sim.base_url}")
        # These are the simulator's own demo credentials, not exchange secrets.
        if len(sim.accounts) == 1:
            say(f"api key: {sim.api_key}  api secret: {sim.api_secret}")
        for acct in sim.accounts if len(sim.accounts) > 1 else ():
            say(f"api key: {acct.api_key}  api secret: {acct.api_secret}  account: {acct.name}")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=duration_s)
    print("sim stopped", file=sys.stderr, flush=True)
