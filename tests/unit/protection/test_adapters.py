"""Adapters on the fake exchange, the ordinary paths: a gone position, monitor-only, limiter.

The fault cases (one per defect of issue 16) are in test_protection_faults.py.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from bybit_hybrid.protection.aged import AgedPhase
from bybit_hybrid.protection.limiter import AccountLimiter, RollingWindow
from bybit_hybrid.protocol.domain import Side
from bybit_hybrid.protocol.events import MarkUpdated
from tests.unit.protection.fakes import KEY, rig, until, zero_position

FIRST_STOP = Decimal("60894.00")


async def test_a_gone_position_confirmed_by_the_list_ends_the_trail_and_marks_send_nothing() -> (
    None
):
    """Found by the fault campaign (seed 63): with the private stream behind, every later mark
    made a fresh trail and sent another stop, each rejected with 10001."""
    async with rig() as r:
        r.open(Side.BUY, "60000", "61200")
        del r.exchange.positions[KEY]  # flat on the exchange, the stream has not said so
        await until(lambda: r.protection.trailing.stats.gone == 1, "the trail to end")
        assert r.exchange.stop_calls() == [FIRST_STOP]
        assert ("open_row", KEY) in r.exchange.calls, "the 10001 claim is checked first"
        assert r.protection.store is not None and r.protection.store.load_trails() == {}
        for _ in range(3):  # the stream is behind: marks keep coming for the flat position
            r.protection.router.on_core_event(MarkUpdated(r.view()))
        await r.settle()
        assert r.exchange.stop_calls() == [FIRST_STOP]
        r.open(Side.BUY, "60000", "61500")  # opened again: trailing resumes
        await until(lambda: r.exchange.stop_of() is not None, "a stop for the reopened position")


async def test_a_spurious_zero_position_is_retried() -> None:
    async with rig() as r:
        r.exchange.fail_stops.append(zero_position())
        r.open(Side.BUY, "60000", "61200")
        await r.settle()
        assert r.exchange.stop_of() == FIRST_STOP
        assert r.protection.trailing.stats.gone_refuted == 1


async def test_aged_close_of_a_position_already_gone_sends_no_order() -> None:
    async with rig(aged_max_age_h=1.0, aged_grace_h=0.0) as r:
        r.open(Side.BUY, "60000", "60100", open_time_ms=1)
        r.exchange.positions.clear()  # REST says: no such open position
        await until(lambda: r.protection.aged.stats.already_gone == 1, "the check")
        assert r.exchange.closes() == []
        state = r.protection.aged.state(KEY)
        assert state is not None and state.phase is AgedPhase.CLOSED


async def test_monitor_only_computes_and_counts_but_sends_nothing_and_confirms_nothing() -> None:
    async with rig(trailing_monitor_only=True, aged_monitor_only_symbols=["BTCUSDT"]) as r:
        r.open(Side.BUY, "60000", "61200", open_time_ms=1)
        r.mark("62500")
        await r.settle()
        assert r.exchange.stop_calls() == [] and r.exchange.closes() == []
        assert r.protection.trailing.stats.monitor_only == 2
        trail = r.protection.trailing.trail(KEY)
        assert trail is not None and trail.wanted_stop == Decimal("62187.50")
        assert trail.confirmed_stop is None and trail.unconfirmed, "never believed placed"


def test_rolling_window_never_lets_more_than_the_limit_into_a_window() -> None:
    window = RollingWindow(10, window_s=1.0)
    granted = [t + window.reserve(t) for t in [0.0] * 25 + [0.5] * 10 + [5.0]]
    for i, at in enumerate(granted):
        in_window = [g for g in granted if at - 1.0 < g <= at]
        assert len(in_window) <= 10, (i, at)
    assert granted[10] == pytest.approx(1.0) and granted[-1] == 5.0


async def test_account_limiter_waits_with_the_injected_sleep() -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    limiter = AccountLimiter({"/p": 2}, clock=lambda: 0.0, sleep=sleep)
    for _ in range(3):
        await limiter.acquire("/p")
    await limiter.acquire("/free")
    assert len(waits) == 1 and waits[0] > 1.0


async def test_a_failed_instruments_load_at_start_up_does_not_stop_protection() -> None:
    """A single 502 from instruments-info made `run` exit, leaving every position unprotected."""
    async with rig(instruments=False) as r:
        r.exchange.fail_instruments = 1
        await r.protection.start()  # logged, not raised
        r.monotonic_s += 6  # past the retry pause
        r.open(Side.BUY, "60000", "61200")
        await r.settle()
        assert r.exchange.stop_of() == FIRST_STOP


async def test_one_router_hop_from_mark_to_stop_and_errors_stay_isolated() -> None:
    async with rig() as r:
        assert set(r.protection.router.stats()) == {"protection"}, "one consumer, one mailbox"
        failing = r.protection.aged

        async def boom(*_: object) -> None:
            raise RuntimeError("aged handler bug")

        failing.handle = boom  # type: ignore[method-assign,assignment]
        r.open(Side.BUY, "60000", "61200")
        await r.settle()
        assert r.exchange.stop_of() == FIRST_STOP, "trailing still ran"
        assert r.protection.handler_errors == {"aged": 1}
