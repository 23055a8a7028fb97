"""The short failover campaign (issue 19): no lost or hidden position, no false alarm.

The long one, with a table: `.venv/bin/python bench/failover_campaign.py`.
"""

from __future__ import annotations

from tests.campaign.failover import QUIET_STEPS, run_failover_campaign


async def test_a_short_failover_campaign_loses_no_position_and_raises_no_false_alarm() -> None:
    result = await run_failover_campaign(seed=19, steps=7)
    assert not result.violations, f"seed {result.seed}: {result.violations}"
    faults = {step.fault for step in result.steps}
    assert faults - QUIET_STEPS, f"no fault was played: {faults}"
    assert sum(result.trades.values()) >= 7
