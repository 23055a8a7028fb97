"""Benchmark: every WebSocket refused for a while (REST up), then accepted again: how long until
every socket is LIVE, and how many connection attempts the outage cost.

    .venv/bin/python bench/outage_recovery.py [--outages 5,25,120] [--shards 1]

Production timings (HybridConfig defaults). The embedded simulator refuses every upgrade with
HTTP 503 for the outage (`refuse_connections`) after dropping every socket. Columns: `to LIVE`
from the moment the simulator accepts again until every socket is LIVE (target: < 5 s);
`attempts` during the outage (all sockets together) and `max/300 s`, the most attempts in any
5-minute window of the run (Bybit allows 500 per IP; the budget's limit is 450).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from decimal import Decimal

from benchlib import machine, table

from bybit_hybrid import BybitHybridStream
from bybit_hybrid.protocol.hybrid import HybridConfig
from bybit_hybrid.protocol.session import SessionState
from bybit_hybrid.sim import SimConfig, SimServer


class Dials:
    """Wraps the core's budget record to keep every attempt's time."""

    def __init__(self, stream: BybitHybridStream) -> None:
        self.times: list[float] = []
        budget = stream.core.connects
        record = budget.record

        def spy(now: float) -> None:
            self.times.append(time.monotonic())
            record(now)

        budget.record = spy  # type: ignore[method-assign]

    def max_in_window(self, window_s: float = 300.0) -> int:
        t = self.times
        return max((sum(1 for b in t[i:] if b < a + window_s) for i, a in enumerate(t)), default=0)


def live(stream: BybitHybridStream) -> bool:
    core = stream.core
    return all(core.session(n).state is SessionState.LIVE for n in core.sockets())


async def until(condition: object, timeout_s: float) -> float:
    start = time.monotonic()
    while not condition():  # type: ignore[operator]
        if time.monotonic() - start > timeout_s:
            raise TimeoutError
        await asyncio.sleep(0.01)
    return time.monotonic() - start


async def trial(outage_s: float, max_args: int) -> list[object]:
    async with SimServer(SimConfig(symbols=5, seed=3)) as sim:
        for symbol in ("BTCUSDT", "ETHUSDT"):
            await sim.open_position(symbol, "Buy", Decimal("0.01"))
        config = HybridConfig(max_args_chars=max_args)
        stream = BybitHybridStream(
            sim.api_key, sim.api_secret, base_url=sim.base_url, config=config,
            rng=random.Random(1),
        )  # fmt: skip
        await stream.start()
        try:
            await stream.wait_ready(10)
            await until(lambda: live(stream), 10)
            dials = Dials(stream)
            sim.faults.refuse_connections(outage_s)
            await sim.faults.drop()
            await asyncio.sleep(outage_s)
            during = len(dials.times)
            to_live = await until(lambda: live(stream), 60)
            return [
                f"{outage_s:g} s",
                len(stream.core.sockets()),
                f"{to_live:.2f} s",
                during,
                dials.max_in_window(),
            ]
        finally:
            await stream.stop()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--outages", default="5,25,120")
    parser.add_argument("--max-args", type=int, default=21_000, help="per-socket topic chars")
    args = parser.parse_args()
    rows = [await trial(float(o), args.max_args) for o in args.outages.split(",")]
    print(machine())
    print(table(["outage", "sockets", "to LIVE", "attempts", "max/300 s"], rows))


if __name__ == "__main__":
    asyncio.run(main())
