"""No surprise on the first run (issue 18 item 2): positions already past the aged limit when
protection first sees them are not closed without `aged_close_existing`, and a dry run sends
nothing at all; a restart keeps the decision. Against the simulator, in process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import ROUND_CEILING, Decimal
from pathlib import Path
from typing import Any

import pytest

from bybit_hybrid.protocol.domain import PositionKey
from bybit_hybrid.sim import EventKind, SimServer
from tests.integration.protection_harness import Rig, start_rig
from tests.integration.stream_harness import sim_config
from tests.support import UNIT_S, wait_for

BTC = "BTCUSDT"  # tick 0.10
BTC_KEY = PositionKey(BTC, 0)
AGED: dict[str, Any] = {"aged_max_age_h": 1.0, "aged_grace_h": 1.0}


@pytest.fixture
async def sim() -> AsyncIterator[SimServer]:
    async with SimServer(sim_config(positions=0, rate_hz=20.0)) as server:
        yield server


async def _old_position(sim: SimServer, hours: float) -> Decimal:
    """A long opened `hours` ago, before any protection ran; its entry price."""
    sim.pause_ticks(BTC)
    await sim.open_position(BTC, "Buy", Decimal("0.001"))
    await sim.change_position(BTC, open_time_ms=sim.now_ms() - int(hours * 3600_000))
    return sim.exchange.positions[(BTC, 0)].avg_price


async def _at_target(rig: Rig, entry: Decimal) -> None:
    """The mark reaches the grace target (break-even + 2 x 0.05 % fees): aged wants out."""
    price = (entry * Decimal("1.0011") / Decimal("0.1")).to_integral_value(ROUND_CEILING)
    await rig.move_and_settle(BTC, price * Decimal("0.1"))


async def _rig(sim: SimServer, db: Path, **settings: Any) -> Rig:
    rig = await start_rig(sim, db, **AGED, **settings)
    await wait_for(lambda: rig.protection.manager.get(BTC_KEY) is not None, 3 * UNIT_S, "BTC")
    return rig


async def test_an_old_position_is_not_closed_on_the_first_run(
    sim: SimServer, tmp_path: Path
) -> None:
    entry = await _old_position(sim, hours=1.5)
    rig = await _rig(sim, tmp_path / "s.sqlite3")
    try:
        await _at_target(rig, entry)
        aged = rig.protection.aged
        await wait_for(lambda: aged.stats.held_existing >= 1, 3 * UNIT_S, "the withheld close")
        assert rig.orders(BTC) == [], "the first run market-closed an old position"
        assert aged.held(BTC_KEY)
        [row] = rig.protection.status()["positions"]
        assert row["aged_held"] is True
    finally:
        await rig.close()
    # A restart on the same state keeps watching it only.
    rig = await _rig(sim, tmp_path / "s.sqlite3")
    try:
        await _at_target(rig, entry + Decimal("1"))
        await wait_for(lambda: rig.protection.aged.held(BTC_KEY), 3 * UNIT_S, "held again")
        await rig.settle()
        assert rig.orders(BTC) == []
    finally:
        await rig.close()


async def test_the_opt_in_closes_it(sim: SimServer, tmp_path: Path) -> None:
    entry = await _old_position(sim, hours=1.5)
    rig = await _rig(sim, tmp_path / "s.sqlite3", aged_close_existing=True)
    try:
        await _at_target(rig, entry)
        await wait_for(lambda: bool(rig.closes(BTC)), 3 * UNIT_S, "the aged close")
        assert not rig.protection.aged.held(BTC_KEY)
    finally:
        await rig.close()


async def test_a_dry_run_sends_nothing(sim: SimServer, tmp_path: Path) -> None:
    entry = await _old_position(sim, hours=1.5)
    rig = await _rig(
        sim,
        tmp_path / "s.sqlite3",
        protection_dry_run=True,
        aged_close_existing=True,  # even opted in, a dry run only logs
        trailing_activation_pct=Decimal("1.0"),
        trailing_min_update_interval_s=0,
    )
    try:
        await _at_target(rig, entry)
        await rig.move_and_settle(BTC, (entry * Decimal("1.03")).quantize(Decimal("0.1")))
        await rig.move_and_settle(BTC, (entry * Decimal("1.05")).quantize(Decimal("0.1")))
        trailing, aged = rig.protection.trailing, rig.protection.aged
        assert trailing.stats.monitor_only >= 1 or aged.stats.monitor_only >= 1
        assert rig.stop_requests() == []
        assert rig.orders(BTC) == []
        assert sim.exchange.history.of_kind(EventKind.TRADING_STOP) == []
    finally:
        await rig.close()
