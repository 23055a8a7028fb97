"""A short seeded fault campaign: full stack against the simulator, socket, REST and trading
faults, restarts and monitor-only -> live; the protection invariant is checked against the
simulator's own position and stop state after every step (tests/campaign/invariants.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.campaign.driver import FAULTS, run_campaign

SEEDS = (1,)


@pytest.mark.parametrize("seed", SEEDS)
async def test_campaign_seed_keeps_every_invariant(seed: int, tmp_path: Path) -> None:
    result = await run_campaign(seed, tmp_path, steps=24)
    assert not result.violations, f"seed {seed}: {result.violations}"
    assert result.opens > 0 and result.stop_requests > 0


async def test_a_campaign_plays_every_fault_and_exercises_the_protection(tmp_path: Path) -> None:
    """Every injectable fault fires; positions open and close; trailing stops are sent; the mark
    goes through a trail's stop and protection closes at market."""
    result = await run_campaign(11, tmp_path, steps=len(FAULTS) + 16, fault_share=0.9)
    assert not result.violations, result.violations
    assert set(result.faults) == set(FAULTS)
    assert result.opens > 0 and result.closes > 0
    assert result.stop_requests > 0, "prices never moved through a trailing activation"
    assert result.crossings > 0 and result.our_closes > 0
