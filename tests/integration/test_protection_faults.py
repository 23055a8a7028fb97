"""Issue 16's rows D1, D5, D7 and A1 end to end (each test failed on the protection code before
the issue's fixes, and passes after): the stream + unified protection against the
simulator with its trading faults, judged by the simulator's own position and stop.

Expected values come from the rules (docs/protection.md): a long's trail activates at
entry·1.02 and keeps its stop at peak·(1 - 0.5 %) on the tick below; an aged position in grace
exits at its (average) entry plus 2 x 0.05 % fees.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from pathlib import Path

from bybit_hybrid.protocol.domain import PositionKey
from bybit_hybrid.sim import CloseReason, SimServer
from tests.integration.protection_harness import (  # noqa: F401 (fixtures)
    Rig,
    held_stop,
    protection_rig,
    quiet_sim,
    start_rig,
    trail_stop,
)
from tests.support import UNIT_S, wait_for

BTC = "BTCUSDT"  # tick 0.10, qty step 0.001
BTC_KEY = PositionKey(BTC, 0)
TICK = Decimal("0.10")


def floor_tick(price: Decimal) -> Decimal:
    return (price / TICK).to_integral_value(ROUND_FLOOR) * TICK


def ceil_tick(price: Decimal) -> Decimal:
    return (price / TICK).to_integral_value(ROUND_CEILING) * TICK


def long_stop(peak: Decimal) -> Decimal:
    return floor_tick(peak * Decimal("0.995"))


def is_open(sim: SimServer) -> bool:
    pos = sim.exchange.positions.get((BTC, 0))
    return pos is not None and pos.is_open


async def test_d1_a_stop_that_failed_to_send_is_sent_once_the_exchange_heals(rig: Rig) -> None:
    """Issue: trading-stop failing for 10 s, then healthy with the mark moving, then a fall
    through the stop: position still open, exchange stopLoss 0. Scaled to units."""
    sim = rig.sim
    entry = await rig.open(BTC, "Buy", "0.001")
    sim.faults.trading_failure("trading-stop", "10006", seconds=2 * UNIT_S)
    peak = floor_tick(entry * Decimal("1.03"))
    await rig.move(BTC, peak)
    await wait_for(lambda: rig.stop_requests(BTC) != [], 3 * UNIT_S, "a first (failing) request")
    assert held_stop(sim, BTC) == 0
    # Healthy again; the mark moves a little under the peak (no new stop wanted).
    await wait_for(lambda: not sim.faults.trading_armed(), 4 * UNIT_S, "the window to end")
    await rig.move(BTC, peak - 5 * TICK)
    await wait_for(
        lambda: held_stop(sim, BTC) == long_stop(peak),
        4 * UNIT_S,
        "the unsent stop on the exchange",
    )
    assert trail_stop(rig, BTC_KEY) == long_stop(peak)
    # The fall through the stop: the exchange's own stop-loss closes it.
    await rig.move(BTC, long_stop(peak) - 20 * TICK)
    await wait_for(lambda: not is_open(sim), 3 * UNIT_S, "the position to be closed")
    assert rig.closes(BTC)[-1].reason is CloseReason.STOP_LOSS


async def test_d1_a_fall_through_a_stop_past_its_retry_budget_closes_at_market(rig: Rig) -> None:
    """The stop was refused (10006) more often than any retry budget and the mark then falls
    through it: protection closes at market, and the position is flat."""
    sim = rig.sim
    entry = await rig.open(BTC, "Buy", "0.002")
    sim.faults.trading_failure("trading-stop", "10006", seconds=10 * UNIT_S, reset_ms=50)
    peak = floor_tick(entry * Decimal("1.03"))
    await rig.move(BTC, peak)
    await wait_for(lambda: len(rig.stop_requests(BTC)) >= 4, 3 * UNIT_S, "1 + 3 retries refused")
    await rig.move(BTC, long_stop(peak) - 10 * TICK)
    await wait_for(lambda: not is_open(sim), 3 * UNIT_S, "a market close")
    assert held_stop(sim, BTC) == 0, "the exchange never held a stop"
    assert [e.reason for e in rig.closes(BTC)] == [CloseReason.ORDER]


async def test_a_fall_while_the_stop_request_hangs_closes_at_market(
    sim: SimServer, tmp_path: Path
) -> None:
    """The stop request gets no reply at all and the mark falls through the stop: protection
    closes at market at once; the hung request (REST timeout 30 units here) does not hold the
    close back (campaign finding F3)."""
    rig = await start_rig(
        sim, tmp_path / "s.sqlite3", trailing_min_update_interval_s=0, rest_timeout_s=30 * UNIT_S
    )
    try:
        entry = await rig.open(BTC, "Buy", "0.002")
        sim.faults.trading_failure("trading-stop", "timeout", seconds=60 * UNIT_S)
        peak = floor_tick(entry * Decimal("1.03"))
        await rig.move(BTC, peak)
        await wait_for(lambda: rig.stop_requests(BTC) != [], 3 * UNIT_S, "a first (hung) request")
        await rig.move(BTC, long_stop(peak) - 10 * TICK)
        await wait_for(lambda: not is_open(sim), 3 * UNIT_S, "a market close")
        assert held_stop(sim, BTC) == 0, "the exchange never held a stop"
        assert [e.reason for e in rig.closes(BTC)] == [CloseReason.ORDER]
    finally:
        await rig.close()


async def test_d5_a_monitor_only_stop_is_sent_by_the_next_live_run(
    sim: SimServer, tmp_path: Path
) -> None:
    """Issue: monitor-only saves stops it never sent; the next live run trusts them and sends
    nothing (open position, exchange stopLoss 0, mark through the stop)."""
    db = tmp_path / "state.sqlite3"
    watch = await start_rig(sim, db, trailing_min_update_interval_s=0, trailing_monitor_only=True)
    try:
        entry = await watch.open(BTC, "Buy", "0.001")
        peak = floor_tick(entry * Decimal("1.03"))
        await watch.move_and_settle(BTC, peak)
        assert trail_stop(watch, BTC_KEY) == long_stop(peak)
        assert watch.stop_requests() == [] and held_stop(sim, BTC) == 0
    finally:
        await watch.close()
    live = await start_rig(sim, db, trailing_min_update_interval_s=0)
    try:
        await live.move(BTC, peak - 5 * TICK)
        await wait_for(
            lambda: held_stop(sim, BTC) == long_stop(peak), 4 * UNIT_S, "the stop on the exchange"
        )
        await live.move(BTC, long_stop(peak) - 20 * TICK)
        await wait_for(lambda: not is_open(sim), 3 * UNIT_S, "the position to be closed")
    finally:
        await live.close()


async def test_d7_one_spurious_zero_position_answer_does_not_end_the_trail(rig: Rig) -> None:
    """Issue: one 10001 "zero position" answer switched trailing off for a position REST and
    the stream show open: the stop never followed a rise, no close on the fall."""
    sim = rig.sim
    entry = await rig.open(BTC, "Buy", "0.001")
    sim.faults.trading_failure("trading-stop", "10001_zero", count=1)
    peak = floor_tick(entry * Decimal("1.03"))
    await rig.move_and_settle(BTC, peak)
    assert rig.stop_requests(BTC)[0].details["ret_code"] == 10001
    higher = peak + 500 * TICK
    await rig.move(BTC, higher)
    await wait_for(
        lambda: held_stop(sim, BTC) == long_stop(higher), 4 * UNIT_S, "the stop to follow the rise"
    )
    await rig.move(BTC, long_stop(higher) - 20 * TICK)
    await wait_for(lambda: not is_open(sim), 3 * UNIT_S, "the position to be closed")


async def test_a1_an_add_moves_the_aged_breakeven_to_the_average_entry(
    sim: SimServer, tmp_path: Path
) -> None:
    """Issue: long at 100, add to an average of 105, mark 100.2 -> closed in grace as
    "breakeven" at -4.57 %. The grace target must follow the average entry."""
    # No trail activates here (it would own the exit): the aged monitor alone decides.
    rig = await start_rig(
        sim,
        tmp_path / "s.sqlite3",
        aged_max_age_h=1.0,
        aged_grace_h=1.0,
        trailing_activation_pct=50,
    )
    try:
        first = await rig.open(BTC, "Buy", "0.001")
        # Young: the add fills at +10 %, so the average entry is +5 %.
        await rig.move_and_settle(BTC, floor_tick(first * Decimal("1.10")))
        await sim.change_position(BTC, size=Decimal("0.002"))
        average = sim.exchange.positions[(BTC, 0)].avg_price
        assert average > first * Decimal("1.04")
        # Back above the first entry's breakeven + fees, far below the average's; then in grace.
        await rig.move_and_settle(BTC, ceil_tick(first * Decimal("1.002")))
        await sim.change_position(BTC, open_time_ms=sim.now_ms() - 90 * 60_000)
        await rig.settle()
        await rig.move_and_settle(BTC, ceil_tick(first * Decimal("1.002")) + TICK)
        assert is_open(sim) and rig.orders(BTC) == [], "closed at a loss as 'breakeven'"
        # At the average's target (entry + 2 x 0.05 % fees) it exits.
        await rig.move_and_settle(BTC, ceil_tick(average * Decimal("1.0011")))
        await wait_for(lambda: not is_open(sim), 3 * UNIT_S, "the aged exit")
        close = rig.orders(BTC)[-1]
        assert Decimal(close.details["price"]) >= average * Decimal("1.001")
    finally:
        await rig.close()
