"""Benchmark: µs of core work per ticker frame, hybrid vs cutover mode, by book size (issue 19 F8).

    .venv/bin/python bench/cutover.py [--positions 10,100,1000] [--ticks 20] [--repeat 3]

A real `HybridCore` with every socket LIVE holds one open position per symbol (simulator
position pushes); the simulator's own ticker deltas for those symbols (book-only, trade and
mark moves) are fed through `core.on_frame` + `core.take_events()`, as the runner does, on a
fake clock. Cutover streams a 50 % share (`cutover_streams`); hybrid streams every symbol.
The cutover figure should not grow with the book: routing is judged when a key opens or
closes, not per frame. Best of `--repeat` runs; prints a markdown table.
"""

from __future__ import annotations

import argparse
import gc
import time

from benchlib import FakeClock, live_core, machine, position_frames, table, ticker_frames

from bybit_hybrid.protocol.failover import cutover_streams
from bybit_hybrid.protocol.hybrid import PRIVATE, HybridConfig, HybridCore

CUTOVER_PCT = 50.0


def _config(mode: str) -> HybridConfig:
    if mode == "hybrid":
        return HybridConfig()
    return HybridConfig(stream_symbol=lambda symbol: cutover_streams(symbol, CUTOVER_PCT))


def us_per_frame(mode: str, positions: int, ticks: int, repeat: int) -> float:
    """The fastest run's µs per ticker frame."""
    opens, _ = position_frames(positions, 0)
    frames = ticker_frames(positions, ticks)
    best = float("inf")
    for _ in range(repeat):
        clock = FakeClock()
        core: HybridCore = live_core(opens, clock, _config(mode))
        public = next(name for name in core.sockets() if name != PRIVATE)
        gc.collect()
        gc.disable()
        try:
            started = time.perf_counter()
            for frame in frames:
                core.on_frame(public, frame, clock.now)
                core.take_events()
            elapsed = time.perf_counter() - started
        finally:
            gc.enable()
        best = min(best, elapsed / len(frames) * 1e6)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--positions", default="10,100,1000")
    parser.add_argument("--ticks", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    sizes = [int(n) for n in args.positions.split(",")]
    rows = []
    for positions in sizes:
        hybrid = us_per_frame("hybrid", positions, args.ticks, args.repeat)
        cutover = us_per_frame("cutover", positions, args.ticks, args.repeat)
        rows.append((positions, f"{hybrid:.1f}", f"{cutover:.1f}", f"{cutover / hybrid:.2f}"))
    print(machine())
    print(table(("positions", "hybrid µs/frame", "cutover µs/frame", "cutover/hybrid"), rows))


if __name__ == "__main__":
    main()
