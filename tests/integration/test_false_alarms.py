"""Issue 19 F4/F5/F7 end to end: a quiet market, a fast market, an outage: no false alarm."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from bybit_hybrid.protocol.failover import FeedMode
from bybit_hybrid.sim import SimServer
from tests.integration.rollout_harness import ROLLOUT, start_rollout
from tests.integration.stream_harness import sim_config
from tests.support import wait_for

BTC, ETH = "BTCUSDT", "ETHUSDT"
STALE_S = ROLLOUT.failover.mark_stale_s


@pytest.fixture
async def sim() -> AsyncIterator[SimServer]:
    async with SimServer(sim_config()) as server:
        yield server


async def test_a_quiet_market_keeps_its_symbol_on_the_streams(sim: SimServer) -> None:
    """F4: trades flow, the mark does not move (Bybit's deltas then carry no markPrice). The
    old code judged the ticker by mark-bearing frames and sent BTC to REST after 1 stretch."""
    h = await start_rollout(sim, "hybrid")
    try:
        sim.set_quiet(BTC)
        t0 = time.monotonic()
        core = h.rollout.hybrid.core
        failover = h.rollout.failover
        assert failover is not None
        # Three stale stretches of trades without a mark change.
        await wait_for(lambda: time.monotonic() - t0 > 3 * STALE_S, 6 * STALE_S, "3 stretches")
        frame_at, mark_at = core.marks.frame_at(BTC), core.mark_frame_at(BTC)
        now = h.rollout.now()
        # The feed was live (frames a moment ago) while the mark stood still all along.
        assert frame_at is not None and now - frame_at < STALE_S
        assert mark_at is not None and now - mark_at > 3 * STALE_S
        assert not h.switches(BTC, FeedMode.POLLING) and not h.switches(BTC, FeedMode.DEGRADED)
        assert failover.symbol_mode(BTC) is FeedMode.STREAMING
        # The frozen mark was sampled from REST, which agreed each time.
        assert failover.stats.mark_checks >= 1 and failover.stats.mark_check_mismatches == 0
    finally:
        sim.set_quiet(BTC, False)
        await h.close()
