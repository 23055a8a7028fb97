"""Protection under ordinary trading faults: one test per defect of issue 16 (D1–D8, A1, A2).

Each plays a fault on the fake exchange and judges by what the *exchange* holds afterwards (its
stop, whether the position is flat), never by counting our own requests.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from decimal import Decimal
from typing import Any

from bybit_hybrid.protection.store import ProtectionStore
from bybit_hybrid.protection.trailing import TrailPhase, TrailState
from bybit_hybrid.protocol.domain import Side
from tests.unit.protection.fakes import (
    KEY,
    now_ms,
    rate_limited,
    rig,
    server_timeout,
    until,
    zero_position,
)

ENTRY = "60000"
IN_GRACE_MS = now_ms() - 90 * 60_000  # 1.5 h old: with 1 h max age and 1 h grace, in grace
FIRST_STOP = Decimal("60894.00")  # 61 200 × 0.995: the trail's first stop after activation


async def test_d1_a_stop_that_failed_past_any_budget_is_sent_again_once_healthy() -> None:
    async with rig() as r:
        r.exchange.fail_stops.extend(rate_limited() for _ in range(12))  # > any retry budget
        r.open(Side.BUY, ENTRY, "61200")
        await r.settle()
        assert r.exchange.stop_of() == FIRST_STOP, "the wanted stop must end up confirmed"
        for mark in ("61300", "61400"):
            r.mark(mark)
        await r.settle()
        r.mark("60800")  # through the stop: the exchange would trigger it; we close too
        await until(r.exchange.is_flat, "the position closed")


async def test_d1_an_unconfirmed_stop_is_never_taken_for_placed() -> None:
    async with rig() as r:
        r.exchange.fail_stops.extend(server_timeout() for _ in range(8))
        r.open(Side.BUY, ENTRY, "61200")
        await r.settle()
        trail = r.protection.trailing.trail(KEY)
        assert trail is not None and trail.stop_price == FIRST_STOP
        assert r.exchange.stop_of() == FIRST_STOP


async def test_d2_a_failed_market_close_is_tried_again_until_flat() -> None:
    async with rig() as r:
        r.open(Side.BUY, ENTRY, "61200")
        await r.settle()
        r.exchange.fail_closes.extend([server_timeout(), server_timeout(), rate_limited()])
        # The exchange's own stop does not fire here (a stuck trigger): only our close can.
        r.mark("60700")
        await until(r.exchange.is_flat, "the position closed after the failed closes")
        assert len(r.exchange.closes()) == 4


async def test_d3_a_retried_stop_never_overwrites_a_tighter_hand_set_stop() -> None:
    async with rig() as r:
        r.exchange.fail_stops.append(rate_limited())
        r.gate = gate = asyncio.Event()  # the retry waits until we let it go
        hand = Decimal("61000.00")  # tighter than the trail's 60 894
        r.open(Side.BUY, ENTRY, "61200")
        await until(lambda: len(r.sleeps) == 1, "the first attempt failed, retry waiting")
        r.exchange.set_stop_by_hand(hand)
        r.push()
        await until(r.protection.router.idle, "the push delivered")
        gate.set()
        await r.settle()
        assert r.exchange.stop_of() == hand
        assert r.exchange.positions[KEY].stop_history == [hand], "nothing looser was sent"


async def test_d3_a_hand_set_stop_during_an_in_flight_request_is_restored() -> None:
    """The request lands after the hand-set stop: the exchange briefly holds ours, then the
    trail sends the tighter hand-set one back, so the stop ends never looser than it was."""
    async with rig() as r:
        r.exchange.hold_stops = hold = asyncio.Event()
        r.open(Side.BUY, ENTRY, "61200")
        await until(lambda: len(r.exchange.stop_calls()) == 1, "the request in flight")
        r.exchange.set_stop_by_hand(Decimal("61000.00"))
        r.push()
        await until(r.protection.router.idle, "the push delivered")
        hold.set()
        await r.settle()
        assert r.exchange.stop_of() == Decimal("61000.00")


async def test_d4_a_trail_created_on_a_mark_adopts_the_exchange_stop() -> None:
    async with rig(instruments=False) as r:
        r.exchange.fail_instruments = 1  # the open finds no tick size
        r.open(Side.BUY, ENTRY, "61200", stop="61000")
        await r.settle()
        r.monotonic_s += 6  # past the pause after a failed instruments load
        r.mark("61210")  # the trail is created on this mark
        await r.settle()
        assert r.protection.trailing.trail(KEY) is not None
        assert r.exchange.stop_of() == Decimal("61000")
        assert r.exchange.stop_calls() == [], "a looser stop must not be sent"


async def test_d5_a_monitor_only_stop_is_sent_by_the_next_live_run(tmp_path: object) -> None:
    path = f"{tmp_path}/state.sqlite3"
    async with rig(ProtectionStore(path), trailing_monitor_only=True) as r:
        r.open(Side.BUY, ENTRY, "61200")
        await r.settle()
        assert r.exchange.stop_calls() == []
        positions = r.exchange.positions
        opened_ms = positions[KEY].open_time_ms
    async with rig(ProtectionStore(path)) as r:
        r.open(Side.BUY, ENTRY, "61200", open_time_ms=opened_ms)  # the same position, no stop
        await r.settle()
        assert r.protection.trailing.stats.resumed == 1
        assert r.exchange.stop_of() == FIRST_STOP, "the live run must place the stop"
        r.mark("60850")
        await until(r.exchange.is_flat, "closed when the mark falls through")


async def test_d6_a_position_reopened_at_the_same_entry_gets_a_fresh_trail() -> None:
    store = ProtectionStore(":memory:")
    names = {f.name for f in dataclasses.fields(TrailState)}
    stop = "wanted_stop" if "wanted_stop" in names else "stop_price"  # the field's old name
    extra: dict[str, Any] = {stop: Decimal("62685.00")}
    if "opened_at_ms" in names:
        extra["opened_at_ms"] = now_ms() - 120_000
    old = TrailState(
        Side.BUY, Decimal(ENTRY), Decimal("0.10"), Decimal("63000"), TrailPhase.TRAILING,
        **extra,
    )  # fmt: skip
    store.save_trail(KEY, old)
    async with rig(store) as r:
        r.open(Side.BUY, ENTRY, "60100", open_time_ms=now_ms() - 30_000)  # later, same entry
        await r.settle()
        trail = r.protection.trailing.trail(KEY)
        assert trail is not None and trail.phase is TrailPhase.WATCHING
        assert not r.exchange.is_flat(), "the old trail's stop must not close the new position"
        assert r.exchange.closes() == [] and r.exchange.stop_calls() == []


async def test_d7_one_spurious_zero_position_does_not_end_trailing() -> None:
    async with rig() as r:
        r.exchange.fail_stops.append(zero_position())  # the position list still shows it open
        r.open(Side.BUY, ENTRY, "61200")
        await r.settle()
        assert r.exchange.stop_of() == FIRST_STOP
        r.mark("62500")  # +1.6 % bypasses the interval
        await r.settle()
        assert r.exchange.stop_of() == Decimal("62187.50")
        r.mark("62000")
        await until(r.exchange.is_flat, "closed when the mark falls through")


async def test_d7_a_confirmed_zero_position_ends_the_trail() -> None:
    async with rig() as r:
        r.open(Side.BUY, ENTRY, "61200")
        del r.exchange.positions[KEY]  # closed on the exchange; the stream has not said so
        await r.settle()
        assert r.protection.trailing.trail(KEY) is None
        r.mark("61300")
        await r.settle()
        assert len(r.exchange.stop_calls()) == 1, "marks before the stream's close send nothing"


async def test_d8_wrong_side_is_never_resent_at_the_same_price_and_closes() -> None:
    """LastPrice trigger: the last price is already below the stop the mark would allow."""
    async with rig(trailing_sl_trigger_by="LastPrice") as r:
        r.open(Side.BUY, ENTRY, "61200")
        r.exchange.set_prices("BTCUSDT", Decimal("61200"), Decimal("60850"))
        await until(r.exchange.is_flat, "the position closed: its trigger price is through")
        assert r.exchange.stop_calls().count(FIRST_STOP) <= 1


async def test_d8_the_crossed_check_reads_the_trigger_price_type() -> None:
    async with rig(trailing_sl_trigger_by="LastPrice") as r:
        r.protection.trailing.trigger_prices = lambda symbol: r.exchange.price(symbol, "LastPrice")
        r.open(Side.BUY, ENTRY, "61500")
        await r.settle()
        stop = r.exchange.stop_of()
        assert stop is not None
        r.mark("61500", last=str(stop - 1))  # the mark is fine, the last price is through
        await until(r.exchange.is_flat, "closed on the last price")


async def test_a1_an_add_moves_the_aged_entry_and_targets() -> None:
    async with rig(aged_max_age_h=1.0, aged_grace_h=1.0) as r:
        r.open(Side.BUY, "100", "99", open_time_ms=IN_GRACE_MS)  # target 100.1: holds
        r.exchange.positions[KEY].entry = Decimal("105")  # an add, average 105
        r.exchange.positions[KEY].size = Decimal("0.020")
        r.push("entry_price", "size")
        r.mark("100.2")
        await r.settle()
        assert not r.exchange.is_flat(), "100.2 is a loss on an entry of 105, not breakeven"
        state = r.protection.aged.state(KEY)
        assert state is not None and state.entry_price == Decimal("105")


async def test_a2_an_aged_close_leaves_no_remainder() -> None:
    async with rig(aged_max_age_h=1.0, aged_grace_h=1.0) as r:
        r.exchange.fill_ratio = Decimal("0.5")  # every market order fills half
        r.open(Side.BUY, "100", "101", open_time_ms=IN_GRACE_MS, size="0.008")
        await until(r.exchange.is_flat, "the remainder closed too")
        assert len(r.exchange.closes()) >= 2


async def test_a2_aged_close_errors_back_off() -> None:
    async with rig(aged_max_age_h=1.0, aged_grace_h=1.0) as r:
        r.exchange.fail_closes.extend(server_timeout() for _ in range(6))
        r.open(Side.BUY, "100", "101", open_time_ms=IN_GRACE_MS)
        await until(r.exchange.is_flat, "closed once the orders pass")
        waits = r.sleeps[:6]
        assert waits == sorted(waits) and waits[-1] >= 1.0, waits


async def test_a_wall_clock_step_back_does_not_block_stop_updates() -> None:
    """The interval rule runs on the monotonic clock; the host clock stepping back an hour
    right after a send must not hold the next update for an hour."""
    wall = [time.time()]
    async with rig(wall=lambda: wall[0]) as r:
        r.open(Side.BUY, ENTRY, "61200")
        await r.settle()
        wall[0] -= 3600
        r.monotonic_s += 31  # half a minute later
        r.mark("61400")  # 61 093: +0.33 %, needs the 30 s interval
        await r.settle()
        assert r.exchange.stop_of() == Decimal("61093.00")


async def test_a_hung_stop_request_does_not_hold_back_the_market_close() -> None:
    """Found by the campaign (h16camp F3): the close waited for the REST timeout of a stop
    request that got no reply."""
    async with rig() as r:
        r.exchange.hold_stops = asyncio.Event()  # the trading-stop call never answers
        r.open(Side.BUY, ENTRY, "61200")
        await until(lambda: len(r.exchange.stop_calls()) == 1, "the stop in flight")
        r.mark("60800")  # through the wanted 60 894: close now, not after the timeout
        await until(r.exchange.is_flat, "closed while the stop request hangs")


async def test_a_stop_request_in_flight_ends_with_its_worker() -> None:
    """Found by the campaign (h16camp F5): when the stream reported the close while a stop
    request hung, the worker was cancelled but the request went on as an orphan task, whose
    later failure nobody retrieved (and which could open a new HTTP session after shutdown)."""
    async with rig() as r:
        r.exchange.hold_stops = asyncio.Event()  # the trading-stop call never answers
        r.open(Side.BUY, ENTRY, "61200")
        await until(lambda: len(r.exchange.stop_calls()) == 1, "the stop in flight")
        del r.exchange.positions[KEY]
        r.push()  # the stream reports the position closed: its worker is cancelled
        await r.settle()
        for _ in range(3):
            await asyncio.sleep(0)
        pending = [
            t for t in asyncio.all_tasks() if not t.done() and "set_stop" in repr(t.get_coro())
        ]
        assert pending == [], "the abandoned stop request must end with its worker"
