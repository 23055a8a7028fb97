"""A short seeded fault campaign: full stack against the simulator, invariants from its history."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.campaign.driver import FAULTS, run_campaign

SEEDS = (1, 2, 3)


@pytest.mark.parametrize("seed", SEEDS)
async def test_campaign_seed_keeps_every_invariant(seed: int, tmp_path: Path) -> None:
    result = await run_campaign(seed, tmp_path)
    assert not result.violations, f"seed {seed}: {result.violations}"
    assert result.opens > 0 and set(result.faults) == set(FAULTS)


async def test_a_campaign_plays_every_fault_and_exercises_the_stack(tmp_path: Path) -> None:
    """Every injectable fault fires, positions open and close, trailing stops are sent."""
    result = await run_campaign(11, tmp_path, steps=len(FAULTS) * 3)
    assert not result.violations, result.violations
    assert set(result.faults) == set(FAULTS)
    assert result.opens > 0 and result.closes > 0
    assert result.stop_requests > 0, "prices never moved through a trailing activation"
