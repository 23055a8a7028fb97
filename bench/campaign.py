"""Long fault campaign: many seeds of the full stack against the simulator, one table row each.

    .venv/bin/python bench/campaign.py [--seeds 200] [--first 1] [--steps 32]

Each seed runs `tests/campaign/driver.py`: a hybrid-mode stream with REST failover, the event
router and unified protection (tmp SQLite) against an in-process simulator, under a seeded
random schedule of every injectable fault (socket and REST faults, trading-stop failures per
retCode by count and window, timeouts, lost/delayed replies, hand-set stops in flight, partial
fills and failed orders on market closes, restarts mid-trail, monitor-only -> live) while
positions open, change and close (one-way and hedge) and prices run through trailing activations
and back through the stop. The protection invariant is checked against the simulator's own
position and stop state after every step (tests/campaign/invariants.py). Prints per seed: faults,
opens, closes, trading-stop requests, crossings (mark through the trail's stop), market closes by
protection, failover switches and violations; then the faults injected per kind; exits 1 if any
seed broke an invariant.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchlib import table
from tests.campaign.driver import FAULTS, CampaignResult, run_campaign

HEADERS = [
    "seed",
    "faults",
    "opens",
    "closes",
    "stop reqs",
    "crossings",
    "our closes",
    "failovers",
    "violations",
]


async def main(first: int, seeds: int, steps: int) -> list[CampaignResult]:
    results: list[CampaignResult] = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(first, first + seeds):
            result = await run_campaign(seed, Path(tmp), steps=steps)
            results.append(result)
            print(table(HEADERS, [result.row()]).splitlines()[-1], flush=True)
            for violation in result.violations:
                print(f"  seed {seed}: {violation}", flush=True)
    return results


def cli() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=200)
    parser.add_argument("--first", type=int, default=1)
    parser.add_argument("--steps", type=int, default=32)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # faults are the point; keep the table readable
    for handler in logging.getLogger().handlers:
        handler.setLevel(logging.ERROR)
    started = time.monotonic()
    print(table(HEADERS, []), flush=True)
    results = asyncio.run(main(args.first, args.seeds, args.steps))
    rows = [r.row() for r in results]
    print()
    print(table(HEADERS, rows))
    totals = [sum(int(str(r[i])) for r in rows) for i in range(1, len(HEADERS))]
    print(table(["seeds", *HEADERS[1:]], [[len(rows), *totals]]))
    kinds: Counter[str] = Counter()
    for result in results:
        kinds.update(result.faults)
    print(table(["fault", "injected"], [[name, kinds[name]] for name in FAULTS]))
    print(f"{time.monotonic() - started:.0f} s")
    return 1 if any(r.violations for r in results) else 0


if __name__ == "__main__":
    sys.exit(cli())
