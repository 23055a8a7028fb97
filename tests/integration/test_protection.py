"""Protection against the simulator: trails that follow and stop out, restarts, aged exits,
monitor-only, 10006 retries and crossed stops, all checked in the simulator's own history."""

from __future__ import annotations

import itertools
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from pathlib import Path

from bybit_hybrid.protection.trailing import TrailPhase
from bybit_hybrid.protocol.domain import PositionKey
from bybit_hybrid.sim import CloseReason, EventKind, SimServer
from tests.integration.protection_harness import (  # noqa: F401 (fixtures)
    Rig,
    SkewClock,
    held_stop,
    protection_rig,
    quiet_sim,
    start_rig,
    trail_stop,
)
from tests.support import UNIT_S, wait_for

BTC = "BTCUSDT"  # tick 0.10
ETH = "ETHUSDT"  # tick 0.01
BTC_KEY = PositionKey(BTC, 0)
TICK_BTC = Decimal("0.10")
TICK_ETH = Decimal("0.01")


def floor_tick(price: Decimal, tick: Decimal) -> Decimal:
    return (price / tick).to_integral_value(ROUND_FLOOR) * tick


def ceil_tick(price: Decimal, tick: Decimal) -> Decimal:
    return (price / tick).to_integral_value(ROUND_CEILING) * tick


async def test_long_activates_trails_and_stops_out_through_the_exchange(rig: Rig) -> None:
    sim = rig.sim
    entry = await rig.open(BTC, "Buy", "0.001")
    activation = floor_tick(entry * Decimal("1.02"), TICK_BTC) + TICK_BTC
    await rig.move_and_settle(BTC, activation)
    first = floor_tick(activation * Decimal("0.995"), TICK_BTC)
    assert rig.sent_stops(BTC) == [first]
    body = rig.stop_requests(BTC)[0].details["body"]
    assert body["tpslMode"] == "Full" and body["positionIdx"] == 0
    assert body["slTriggerBy"] == "MarkPrice"

    # Trail: the walk climbs 300 ticks a step, the stop follows peak·0.995.
    sim.set_trend(BTC, 300)
    sim.resume_ticks(BTC)
    await wait_for(lambda: len(rig.sent_stops(BTC)) >= 4, 5 * UNIT_S, "the stop to follow")
    # Reverse: the mark falls through the last stop and the exchange closes the position.
    sim.set_trend(BTC, -300)
    await wait_for(lambda: bool(rig.closes(BTC)), 5 * UNIT_S, "the exchange stop-loss to fire")
    sim.pause_ticks(BTC)
    close = rig.closes(BTC)[0]
    assert close.reason is CloseReason.STOP_LOSS
    stops = rig.sent_stops(BTC)
    assert stops == sorted(set(stops)), "stops must only rise for a long"
    assert all(stop % TICK_BTC == 0 for stop in stops)
    fills = [e for e in sim.exchange.history.of_kind(EventKind.ORDER) if e.symbol == BTC]
    assert fills[-1].reason is CloseReason.STOP_LOSS
    assert Decimal(fills[-1].details["price"]) <= stops[-1]
    await wait_for(lambda: rig.protection.trailing.trail(BTC_KEY) is None, 3 * UNIT_S, "trail end")
    assert rig.store.load_trails() == {}
    assert not rig.orders(BTC), "the exchange closed it; we sent no order"


async def test_short_in_hedge_mode_trails_down_and_stops_out(rig: Rig) -> None:
    sim = rig.sim
    await sim.set_position_mode(ETH, "hedge")
    key = PositionKey(ETH, 2)
    entry = await rig.open(ETH, "Sell", "0.10", idx=2)
    activation = ceil_tick(entry * Decimal("0.98"), TICK_ETH) - TICK_ETH
    await rig.move_and_settle(ETH, activation, idx=2)
    first = ceil_tick(activation * Decimal("1.005"), TICK_ETH)
    assert rig.sent_stops(ETH) == [first]
    assert rig.stop_requests(ETH)[0].details["body"]["positionIdx"] == 2
    sim.set_trend(ETH, -40)
    sim.resume_ticks(ETH)
    await wait_for(lambda: len(rig.sent_stops(ETH)) >= 4, 5 * UNIT_S, "the stop to follow")
    sim.set_trend(ETH, 40)
    await wait_for(lambda: bool(rig.closes(ETH)), 5 * UNIT_S, "the exchange stop-loss to fire")
    sim.pause_ticks(ETH)
    assert rig.closes(ETH)[0].reason is CloseReason.STOP_LOSS
    stops = rig.sent_stops(ETH)
    assert stops == sorted(set(stops), reverse=True), "stops must only fall for a short"
    await wait_for(lambda: rig.protection.trailing.trail(key) is None, 3 * UNIT_S, "trail end")


async def test_restart_mid_trail_resumes_the_same_peak_and_stop(
    sim: SimServer, tmp_path: Path
) -> None:
    db = tmp_path / "state.sqlite3"
    rig = await start_rig(sim, db, trailing_min_update_interval_s=0)
    try:
        entry = await rig.open(BTC, "Buy", "0.001")
        await rig.open(ETH, "Buy", "0.10")
        peak = floor_tick(entry * Decimal("1.03"), TICK_BTC)
        await rig.move_and_settle(BTC, peak)
        # The mark eases off the peak: the stop stays, the peak is remembered.
        await rig.move_and_settle(BTC, peak - 50 * TICK_BTC)
        before = rig.protection.trailing.trail(BTC_KEY)
        assert before is not None and before.extreme_price == peak
        assert held_stop(sim, BTC) == long_stop(peak) == trail_stop(rig, BTC_KEY)
    finally:
        await rig.close()
    # While we are down, ETH is closed on the exchange: its stored state must go.
    await sim.close_position(ETH)
    sent_before = len(rig.sent_stops(BTC))

    rig = await start_rig(sim, db, trailing_min_update_interval_s=0)
    try:
        trailing = rig.protection.trailing
        await wait_for(lambda: trailing.trail(BTC_KEY) is not None, 3 * UNIT_S, "resume")
        await rig.settle()
        after = trailing.trail(BTC_KEY)
        assert after is not None and trailing.stats.resumed == 1
        assert (after.extreme_price, after.phase) == (peak, TrailPhase.TRAILING)
        # The exchange still holds the stop from before the restart (nothing loosened it), and
        # the trail agrees with the exchange.
        assert held_stop(sim, BTC) == long_stop(peak) == trail_stop(rig, BTC_KEY)
        assert rig.sent_stops(BTC)[sent_before:] in ([], [long_stop(peak)])
        await wait_for(
            lambda: set(rig.store.load_trails()) == {BTC_KEY}, 3 * UNIT_S, "ETH row dropped"
        )
        # The trail goes on from the remembered peak.
        higher = peak + 1000 * TICK_BTC
        await rig.move_and_settle(BTC, higher)
        assert held_stop(sim, BTC) == long_stop(higher) == trail_stop(rig, BTC_KEY)
    finally:
        await rig.close()


async def test_aged_positions_exit_at_their_targets(sim: SimServer, tmp_path: Path) -> None:
    rig = await start_rig(sim, tmp_path / "s.sqlite3", aged_max_age_h=1.0, aged_grace_h=1.0)
    try:
        now_ms = sim.now_ms()
        # BTC: 1.5 h old -> grace: target is entry + 2 x 0.05 % fees.
        btc_entry = await rig.open(BTC, "Buy", "0.001")
        await sim.change_position(BTC, open_time_ms=now_ms - 90 * 60_000)
        # ETH short: 5 h old -> 3 h into progressive: accepted loss 1.5 %, target entry·1.014.
        await rig.open(ETH, "Sell", "0.10")
        eth_entry = sim.exchange.positions[(ETH, 0)].avg_price
        await sim.change_position(ETH, open_time_ms=now_ms - 5 * 3600_000)
        await rig.settle()
        below_target = floor_tick(btc_entry * Decimal("1.0009"), TICK_BTC)
        await rig.move_and_settle(BTC, below_target)
        assert not rig.orders(BTC)
        await rig.move_and_settle(BTC, ceil_tick(btc_entry * Decimal("1.001"), TICK_BTC))
        await wait_for(lambda: bool(rig.closes(BTC)), 3 * UNIT_S, "BTC aged close")
        # A short loses when the price rises: 1.3 % up is within the accepted 1.5 % - fees.
        await rig.move_and_settle(ETH, floor_tick(eth_entry * Decimal("1.013"), TICK_ETH))
        await wait_for(lambda: bool(rig.closes(ETH)), 3 * UNIT_S, "ETH aged close")
        await rig.settle()  # each exit is verified flat on the position list before it counts
        for symbol in (BTC, ETH):
            assert len(rig.orders(symbol)) == 1
            assert rig.closes(symbol)[0].reason is CloseReason.ORDER
        assert rig.protection.aged.stats.closes == 2
        assert not rig.stop_requests(), "no trail was active"
    finally:
        await rig.close()


async def test_monitor_only_sends_nothing(sim: SimServer, tmp_path: Path) -> None:
    rig = await start_rig(
        sim,
        tmp_path / "s.sqlite3",
        trailing_monitor_only=True,
        aged_monitor_only=True,
        aged_max_age_h=1.0,
        trailing_min_update_interval_s=0,
    )
    try:
        entry = await rig.open(BTC, "Buy", "0.001")
        await sim.change_position(BTC, open_time_ms=sim.now_ms() - 2 * 3600_000)
        await rig.open(ETH, "Buy", "0.10")
        # BTC: activates and moves the stop twice; ETH: old and in profit (aged wants out).
        await rig.move_and_settle(BTC, floor_tick(entry * Decimal("1.03"), TICK_BTC))
        await rig.move_and_settle(BTC, floor_tick(entry * Decimal("1.05"), TICK_BTC))
        await sim.change_position(ETH, open_time_ms=sim.now_ms() - 5 * 3600_000)
        eth_entry = sim.exchange.positions[(ETH, 0)].avg_price
        await rig.move_and_settle(ETH, floor_tick(eth_entry * Decimal("1.01"), TICK_ETH))
        trailing, aged = rig.protection.trailing, rig.protection.aged
        assert trailing.stats.monitor_only == 2
        assert trailing.trail(BTC_KEY) is not None
        assert aged.stats.monitor_only >= 1
        assert rig.stop_requests() == []
        assert rig.orders(BTC) == [] and rig.orders(ETH) == []
    finally:
        await rig.close()


def long_stop(peak: Decimal) -> Decimal:
    """The rule (docs/protection.md): a long's trail stop is peak·(1 - 0.5 %), on the tick below."""
    return floor_tick(peak * Decimal("0.995"), TICK_BTC)


def within_bybits_limits(rig: Rig, symbol: str) -> None:
    """No more than 10 trading-stop requests in any rolling second, and none sent before the
    reset time a 10006 answer announced."""
    requests = rig.stop_requests(symbol)
    times = [e.time_ms for e in requests]
    for i, t in enumerate(times):
        assert sum(1 for u in times[i:] if u < t + 1000) <= 10, f"over 10/s at {t}"
    for before, after in itertools.pairwise(requests):
        if before.details["ret_code"] == 10006:
            reset_ms = before.time_ms + RESET_MS
            assert after.time_ms >= reset_ms, f"request at {after.time_ms} before reset {reset_ms}"


RESET_MS = 150


async def test_rate_limited_trading_stop_is_retried_within_limits(rig: Rig) -> None:
    """Compares the exchange's stop with the trail's after each phase (not request counts)."""
    sim = rig.sim
    entry = await rig.open(BTC, "Buy", "0.001")
    sim.faults.trading_failure("trading-stop", "10006", count=2, reset_ms=RESET_MS)
    activation = floor_tick(entry * Decimal("1.03"), TICK_BTC)
    await rig.move_and_settle(BTC, activation)
    await wait_for(
        lambda: held_stop(sim, BTC) == long_stop(activation), 3 * UNIT_S, "the stop after 10006"
    )
    assert trail_stop(rig, BTC_KEY) == held_stop(sim, BTC)

    # 10006 for longer than any retry budget: the exchange keeps the old stop meanwhile (never
    # a looser one), and once the limit lifts it holds the trail's newest stop, no new mark needed.
    sim.faults.trading_failure("trading-stop", "10006", seconds=1.5 * UNIT_S, reset_ms=RESET_MS)
    higher = activation + 1000 * TICK_BTC
    await rig.move(BTC, higher)
    await wait_for(lambda: held_stop(sim, BTC) == long_stop(higher), 5 * UNIT_S, "the newest stop")
    await rig.settle()
    assert trail_stop(rig, BTC_KEY) == held_stop(sim, BTC) == long_stop(higher)
    within_bybits_limits(rig, BTC)


async def test_a_crossed_stop_is_replaced_by_a_market_close(sim: SimServer, tmp_path: Path) -> None:
    clock = SkewClock()
    rig = await start_rig(sim, tmp_path / "s.sqlite3", clock=clock)  # 30 s minimum interval
    try:
        entry = await rig.open(BTC, "Buy", "0.001")
        activation = floor_tick(entry * Decimal("1.02"), TICK_BTC) + TICK_BTC
        await rig.move_and_settle(BTC, activation)
        (first,) = rig.sent_stops(BTC)
        # A new peak 0.8 % higher: too soon to move the stop (under the 1 % bypass).
        peak = floor_tick(activation * Decimal("1.008"), TICK_BTC)
        await rig.move_and_settle(BTC, peak)
        assert rig.sent_stops(BTC) == [first]
        # 31 s later the mark is back below peak·0.995 but above the exchange stop: the stop
        # the trail wants is already crossed, so it closes at market instead of sending it.
        clock.advance(31)
        wanted = floor_tick(peak * Decimal("0.995"), TICK_BTC)
        await rig.move_and_settle(BTC, wanted - 20 * TICK_BTC)
        await wait_for(lambda: bool(rig.closes(BTC)), 3 * UNIT_S, "the market close")
        assert rig.closes(BTC)[0].reason is CloseReason.ORDER
        assert len(rig.orders(BTC)) == 1
        assert rig.sent_stops(BTC) == [first]
        assert rig.protection.trailing.stats.closes == 1
    finally:
        await rig.close()
