"""`bybit-hybrid demo`: the embedded simulator with a lively scenario and the stream against it."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from typing import Any

from bybit_hybrid.service.render import position_line
from bybit_hybrid.sim import SimConfig, SimServer
from bybit_hybrid.stream import BybitHybridStream

HELP = "run the simulator with a lively scenario and stream its positions (no keys needed)"
SUMMARY_EVERY_S = 5.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--duration", type=float, metavar="S", help="stop after S seconds")
    parser.add_argument("--symbols", type=int, default=8, help="simulated symbols (default 8)")
    parser.add_argument("--seed", type=int, default=1, help="random seed of the price paths")


def run(args: argparse.Namespace) -> int:
    if args.duration is not None and args.duration <= 0:
        raise argparse.ArgumentTypeError("--duration must be > 0")
    return asyncio.run(_demo(args))


async def _print_event(event: str, payload: dict[str, Any]) -> None:
    data = payload["data"]
    if data["source"] != "ticker":  # marks arrive ten times a second: summarised instead
        print(position_line(data), flush=True)


async def _summaries(stream: BybitHybridStream) -> None:
    while True:
        await asyncio.sleep(SUMMARY_EVERY_S)
        stats = stream.get_stats()
        print(
            f"-- {stats['active_positions']} open, {stats['subscribed_tickers']} tickers, "
            f"{stats['ticker_updates']} ticker frames, {stats['combined_events']} events, "
            f"{stats['reconnections']} reconnects",
            flush=True,
        )
        for view in stream.positions():
            print(
                f"   {view.key} {view.side} {view.size} mark={view.mark_price} "
                f"upnl={view.unrealised_pnl}",
                flush=True,
            )


async def _demo(args: argparse.Namespace) -> int:
    config = SimConfig(symbols=args.symbols, positions=3, seed=args.seed, scenario="lively")
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, done.set)
    async with SimServer(config) as sim:
        print(f"simulator on {sim.base_url}; streaming its positions", flush=True)
        stream = BybitHybridStream(sim.api_key, sim.api_secret, _print_event, base_url=sim.base_url)
        await stream.start()
        summaries = asyncio.create_task(_summaries(stream))
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), args.duration)
        finally:
            summaries.cancel()
            await stream.stop()
        stats = stream.get_stats()
        print(
            f"done: {stats['combined_events']} events, {stats['ticker_updates']} ticker "
            f"frames, {stats['handler_errors']} handler errors",
            file=sys.stdout,
            flush=True,
        )
    return 0
