"""Long fault campaign: many seeds of the full stack against the simulator, one table row each.

    .venv/bin/python bench/campaign.py [--seeds 200] [--first 1] [--steps 32] [--jobs 4]

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
import json
import logging
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

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


async def main(seeds: list[int], steps: int, *, child: bool = False) -> list[CampaignResult]:
    results: list[CampaignResult] = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            try:
                result = await run_campaign(seed, Path(tmp), steps=steps)
            except Exception as exc:  # a campaign bug: one seed's row, the others still run
                result = CampaignResult(seed, violations=[f"campaign crashed: {exc!r}"])
            results.append(result)
            if child:
                print(_RESULT_TAG + json.dumps(_to_json(result)), flush=True)
                continue
            _print_seed(result)
    return results


_RESULT_TAG = "campaign-result "


def _print_seed(result: CampaignResult) -> None:
    print(table(HEADERS, [result.row()]).splitlines()[-1], flush=True)
    for violation in result.violations:
        print(f"  seed {result.seed}: {violation}", flush=True)


def _to_json(result: CampaignResult) -> dict[str, Any]:
    return {
        "seed": result.seed,
        "faults": dict(result.faults),
        "opens": result.opens,
        "closes": result.closes,
        "stop_requests": result.stop_requests,
        "crossings": result.crossings,
        "our_closes": result.our_closes,
        "failovers": result.failovers,
        "violations": result.violations,
        "duration_s": result.duration_s,
    }


def _from_json(data: dict[str, Any]) -> CampaignResult:
    result = CampaignResult(int(data["seed"]))
    result.faults.update(data["faults"])
    for name in ("opens", "closes", "stop_requests", "crossings", "our_closes", "failovers"):
        setattr(result, name, int(data[name]))
    result.violations = list(data["violations"])
    result.duration_s = float(data["duration_s"])
    return result


async def run_jobs(seeds: list[int], steps: int, jobs: int) -> list[CampaignResult]:
    """Seeds dealt round-robin to `jobs` child processes (each seed alone in its process's event
    loop, as in the sequential run); rows print as they arrive."""
    children = []
    for j in range(jobs):
        mine = seeds[j::jobs]
        if not mine:
            continue
        children.append(
            await asyncio.create_subprocess_exec(
                sys.executable,
                __file__,
                "--child",
                "--steps",
                str(steps),
                "--seed-list",
                ",".join(map(str, mine)),
                stdout=asyncio.subprocess.PIPE,
            )
        )
    results: list[CampaignResult] = []

    async def collect(proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        async for raw in proc.stdout:
            line = raw.decode()
            if line.startswith(_RESULT_TAG):
                result = _from_json(json.loads(line[len(_RESULT_TAG) :]))
                results.append(result)
                _print_seed(result)
        await proc.wait()

    await asyncio.gather(*(collect(p) for p in children))
    return sorted(results, key=lambda r: r.seed)


def cli() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=200)
    parser.add_argument("--first", type=int, default=1)
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--jobs", type=int, default=1, help="seeds in N processes at once")
    parser.add_argument("--seed-list", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    # Faults are the point (auth rejections, timeouts): keep the table readable. The campaign
    # itself fails a seed on any exception logged by the package.
    logging.basicConfig(level=logging.CRITICAL)
    for handler in logging.getLogger().handlers:
        handler.setLevel(logging.CRITICAL)
    seeds = list(range(args.first, args.first + args.seeds))
    if args.seed_list:
        seeds = [int(s) for s in args.seed_list.split(",")]
    if args.child:
        asyncio.run(main(seeds, args.steps, child=True))
        return 0
    started = time.monotonic()
    print(table(HEADERS, []), flush=True)
    if args.jobs > 1:
        results = asyncio.run(run_jobs(seeds, args.steps, args.jobs))
    else:
        results = asyncio.run(main(seeds, args.steps))
    report(results)
    print(f"{len(results)} seeds, {args.jobs} job(s), {time.monotonic() - started:.0f} s")
    return 1 if any(r.violations for r in results) or len(results) != len(seeds) else 0


def report(results: list[CampaignResult]) -> None:
    rows = [r.row() for r in results]
    print()
    print(table(HEADERS, rows))
    totals = [sum(int(str(r[i])) for r in rows) for i in range(1, len(HEADERS))]
    print(table(["seeds", *HEADERS[1:]], [[len(rows), *totals]]))
    kinds: Counter[str] = Counter()
    for result in results:
        kinds.update(result.faults)
    print(table(["fault", "injected"], [[name, kinds[name]] for name in FAULTS]))
    slowest = max((r.duration_s for r in results), default=0.0)
    print(f"seed time: max {slowest:.1f} s")


if __name__ == "__main__":
    sys.exit(cli())
