"""The short failover campaign (issue 19): no lost or hidden position, no false alarm.

The long one, with a table: `.venv/bin/python bench/failover_campaign.py`.
"""

from __future__ import annotations

from tests.campaign.failover import FAULTS, QUIET_STEPS, run_failover_campaign
from tests.campaign.pre_f1 import pre_f1_book


async def test_a_short_failover_campaign_loses_no_position_and_raises_no_false_alarm() -> None:
    result = await run_failover_campaign(seed=19, steps=len(FAULTS))
    assert not result.violations, f"seed {result.seed}: {result.violations}"
    faults = {step.fault for step in result.steps}
    assert faults - QUIET_STEPS, f"no fault was played: {faults}"
    assert sum(result.trades.values()) >= 7


async def test_the_campaign_catches_the_pre_f1_book_hiding_a_position() -> None:
    """Teeth: with issue 19 F1's old rules put back (one listing that misses a key closes it,
    the same stamps cannot re-open it), lagging listings during private reconnects hide
    positions, and the campaign's hidden-position check says so."""
    with pre_f1_book():
        result = await run_failover_campaign(seed=6, steps=2, faults=["lag_reconnect"] * 2)
    hidden = [v for v in result.violations if "hidden for more than" in v]
    assert hidden, f"seed 6 on the pre-F1 book: no hidden position found ({result.violations})"
