"""Benchmark: failover switches and alerts with NO fault, production thresholds (issue 19 F4/F7).

    .venv/bin/python bench/false_alarms.py [--symbols 250] [--rate 1] [--seconds 15]

The simulator holds one position per symbol and walks its prices at `--rate` ticks per second
(a slow feed: each tick moves the mark of only some symbols, and Bybit's deltas then carry no
markPrice). A hybrid-mode `RolloutStream` with the production `RolloutConfig` runs for
`--seconds`; nothing is injected. Every switch to POLLING and every alert raised is false.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchlib import machine, table

from bybit_hybrid.protocol.alerts import AlertRaised
from bybit_hybrid.protocol.failover import FailoverSwitched, FeedMode
from bybit_hybrid.protocol.hybrid import CoreEvent
from bybit_hybrid.service.streams import rollout_stream
from bybit_hybrid.sim import SimConfig, SimServer


async def run(symbols: int, rate_hz: float, seconds: float) -> tuple[int, int, int, int]:
    events: list[CoreEvent] = []
    config = SimConfig(symbols=symbols, positions=symbols, rate_hz=rate_hz, seed=19)
    async with SimServer(config) as sim:
        stream = rollout_stream(
            "hybrid", sim.api_key, sim.api_secret, base_url=sim.base_url, rng=random.Random(19)
        )
        stream.add_listener(events.append)
        await stream.start()
        try:
            await stream.wait_ready(30.0)
            await asyncio.sleep(seconds)  # the run's length: nothing is waited for
        finally:
            await stream.stop()
    switches = [e for e in events if isinstance(e, FailoverSwitched)]
    fell_back = {e.scope for e in switches if e.new is FeedMode.POLLING}
    alerts = [e for e in events if isinstance(e, AlertRaised)]
    critical = sum(a.severity.value == "critical" for a in alerts)
    return len(fell_back), len(switches), len(alerts), critical


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=250)
    parser.add_argument("--rate", type=float, default=1.0)
    parser.add_argument("--seconds", type=float, default=15.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.CRITICAL)
    fell_back, switches, alerts, critical = asyncio.run(run(args.symbols, args.rate, args.seconds))
    print(machine())
    headers = ("symbols", "ticks/s", "seconds", "fell back", "switches", "alerts", "critical")
    row = (args.symbols, args.rate, args.seconds, fell_back, switches, alerts, critical)
    print(table(headers, [row]))


if __name__ == "__main__":
    main()
