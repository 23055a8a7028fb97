"""The long failover campaign (issue 19): seeded REST lag/reorder, black holes, clock steps, quiet
markets against the simulator; one table row per seed.

    .venv/bin/python bench/failover_campaign.py [--seeds 3] [--first 1] [--steps 21] [--pre-f1]

Each seed runs `tests/campaign/failover.py` with every fault armed for 1-2 public ping+pong
periods (the long step), so black-holed public sockets are declared dead and replaced within
the step. Columns: steps played, trades on the exchange, the longest time any position the
exchange held was missing from the stream's book, the slowest convergence after a step (book ==
exchange), switches to REST polling, critical alerts, false alarms (criticals or switches in
no-fault/quiet-market/clock-step steps) and violations. Exit status 1 if any seed has one.

`--pre-f1` runs the same campaign on the pre-F1 book (`tests/campaign/pre_f1.py`: one listing
that misses a key closes it, and a later row with the same stamps cannot re-open it), to show
the hidden-position check catches what F1 fixed: there, violations are the expected outcome.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchlib import machine, table
from tests.campaign.failover import (
    CONVERGE_S,
    HIDDEN_BOUND_S,
    LONG_STEP_S,
    FailoverCampaignResult,
    run_failover_campaign,
)
from tests.campaign.pre_f1 import pre_f1_book


def _row(result: FailoverCampaignResult) -> tuple[object, ...]:
    faults = Counter(step.fault for step in result.steps)
    false_alarms = sum(len(step.false_alarms) for step in result.steps)
    return (
        result.seed,
        len(result.steps),
        " ".join(f"{name}:{n}" for name, n in sorted(faults.items())),
        sum(result.trades.values()),
        f"{result.hidden_max_s:.2f}",
        f"{max(step.converge_s for step in result.steps):.2f}",
        result.switches_to_polling,
        result.alerts_critical,
        false_alarms,
        len(result.violations),
        f"{result.duration_s:.0f}",
    )


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first", type=int, default=1)
    parser.add_argument("--steps", type=int, default=21)
    parser.add_argument(
        "--pre-f1", action="store_true", help="the pre-F1 book (a mutation): violations expected"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    started = time.monotonic()
    results = []
    for seed in range(args.first, args.first + args.seeds):
        with pre_f1_book() if args.pre_f1 else contextlib.nullcontext():
            result = await run_failover_campaign(seed, args.steps, LONG_STEP_S)
        results.append(result)
        for violation in result.violations:
            print(f"seed {seed}: {violation}", file=sys.stderr)
    headers = (
        "seed",
        "steps",
        "faults",
        "trades",
        "hidden max s",
        "converge max s",
        "to polling",
        "criticals",
        "false alarms",
        "violations",
        "run s",
    )
    print(machine())
    if args.pre_f1:
        print("book: pre-F1 mutation (tests/campaign/pre_f1.py)")
    print(f"bounds: hidden <= {HIDDEN_BOUND_S:.1f} s, converge <= {CONVERGE_S:.1f} s")
    print(table(headers, [_row(r) for r in results]))
    print(f"total {time.monotonic() - started:.0f} s")
    return 1 if any(r.violations for r in results) else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
