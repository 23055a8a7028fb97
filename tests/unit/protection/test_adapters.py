"""Adapters against a scripted exchange: a gone position ends a trail without retries; an aged
position already gone is recorded closed without an order; monitor-only sends nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest

from bybit_hybrid.protection.aged import AgedPhase
from bybit_hybrid.protection.limiter import AccountLimiter, RollingWindow
from bybit_hybrid.protection.store import ProtectionStore
from bybit_hybrid.protection.trailing import TrailPhase, TrailState
from bybit_hybrid.protection.unified import UnifiedProtection
from bybit_hybrid.protocol.domain import Instrument, PositionKey, PositionSnapshot, Side, Source
from bybit_hybrid.protocol.events import MarkUpdated, PositionOpened, PositionView
from bybit_hybrid.service.settings import load_settings
from bybit_hybrid.transport.errors import ZeroPositionError
from tests.support import wait_for

KEY = PositionKey("BTCUSDT", 0)
BTC = Instrument("BTCUSDT", "USDT", Decimal("0.10"), Decimal("0.001"), Decimal("0.001"), "Trading")


def view(mark: str, *, open_time_ms: int | None = None) -> PositionView:
    return PositionView(
        key=KEY,
        side=Side.BUY,
        size=Decimal("0.001"),
        entry_price=Decimal("60000"),
        mark_price=Decimal(mark),
        unrealised_pnl=None,
        leverage=Decimal(10),
        position_status="Normal",
        stop_loss=None,
        take_profit=None,
        trailing_stop=None,
        liq_price=None,
        open_time_ms=open_time_ms,
        status="open",
        source=Source.TICKER,
        exchange_ts_ms=1,
        cs=1,
        seq=1,
        received_at=0.0,
    )


class ScriptedExchange:
    """Stands in for ProtectionExchange: records calls, answers from a script."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.stop_error: Exception | None = None
        self.row: PositionSnapshot | None = None

    async def set_stop(self, key: PositionKey, stop: Decimal) -> bool:
        self.calls.append(("set_stop", stop))
        if self.stop_error is not None:
            raise self.stop_error
        return True

    async def open_row(self, key: PositionKey) -> PositionSnapshot | None:
        self.calls.append(("open_row", key))
        return self.row

    async def close_at_market(self, key: PositionKey, side: Side, qty: Decimal) -> str:
        self.calls.append(("close", qty))
        return "order-1"

    async def instruments(self) -> dict[str, Instrument]:
        return {"BTCUSDT": BTC}


@pytest.fixture
async def rig(request: pytest.FixtureRequest) -> AsyncIterator[tuple[UnifiedProtection, Any]]:
    overrides = getattr(request, "param", {})
    settings = load_settings(overrides={"aged_max_age_h": 1.0, **overrides})
    store = ProtectionStore(":memory:")
    no_rest: Any = None  # every exchange call goes to the scripted exchange
    protection = UnifiedProtection(settings, no_rest, store=store, instruments={"BTCUSDT": BTC})
    scripted = ScriptedExchange()
    protection.exchange = scripted  # type: ignore[assignment]
    protection.trailing._exchange = scripted  # type: ignore[assignment]
    protection.aged._exchange = scripted  # type: ignore[assignment]
    await protection.start(load_instruments=False)
    yield protection, scripted
    await protection.stop()
    store.close()


async def test_zero_position_ends_the_trail_without_retries(
    rig: tuple[UnifiedProtection, ScriptedExchange],
) -> None:
    protection, exchange = rig
    exchange.stop_error = ZeroPositionError(10001, "can not set tp/sl/ts for zero position", "x")
    protection.router.on_core_event(PositionOpened(view("61200")))
    await wait_for(lambda: protection.trailing.stats.gone == 1, what="the trail to end")
    assert exchange.calls == [("set_stop", Decimal("60894.00"))]
    assert protection.trailing.trail(KEY) is None
    assert protection.trailing.stats.retries == 0
    assert protection.store is not None and protection.store.load_trails() == {}


async def test_marks_after_zero_position_send_nothing_until_the_stream_reports_the_close(
    rig: tuple[UnifiedProtection, ScriptedExchange],
) -> None:
    """Found by the fault campaign (seed 63): with the private stream behind, every later mark
    made a fresh trail and sent another stop, each rejected with 10001."""
    protection, exchange = rig
    exchange.stop_error = ZeroPositionError(10001, "can not set tp/sl/ts for zero position", "x")
    protection.router.on_core_event(PositionOpened(view("61200")))
    await wait_for(lambda: protection.trailing.stats.gone == 1, what="the trail to end")
    for mark in ("61300", "61400", "61500"):
        protection.router.on_core_event(MarkUpdated(view(mark)))
    await wait_for(protection.idle, what="protection idle")
    assert exchange.calls == [("set_stop", Decimal("60894.00"))]
    assert protection.trailing.trail(KEY) is None
    # A lifecycle event (here: opened again) means a live position: trailing resumes.
    exchange.stop_error = None
    protection.router.on_core_event(PositionOpened(view("61600")))
    await wait_for(lambda: len(exchange.calls) == 2, what="a stop for the reopened position")


async def test_aged_close_of_a_position_already_gone_sends_no_order(
    rig: tuple[UnifiedProtection, ScriptedExchange],
) -> None:
    protection, exchange = rig
    exchange.row = None  # REST says: no such open position
    old = view("60100", open_time_ms=1)
    protection.router.on_core_event(PositionOpened(old))
    await wait_for(lambda: protection.aged.stats.already_gone == 1, what="the check")
    assert exchange.calls == [("open_row", KEY)]
    state = protection.aged.state(KEY)
    assert state is not None and state.phase is AgedPhase.CLOSED


@pytest.mark.parametrize(
    "rig",
    [{"trailing_monitor_only": True, "aged_monitor_only_symbols": ["BTCUSDT"]}],
    indirect=True,
)
async def test_monitor_only_computes_and_counts_but_sends_nothing(
    rig: tuple[UnifiedProtection, ScriptedExchange],
) -> None:
    protection, exchange = rig
    protection.router.on_core_event(PositionOpened(view("61200", open_time_ms=1)))
    protection.router.on_core_event(MarkUpdated(view("62500", open_time_ms=1)))
    await wait_for(protection.idle, what="idle")
    assert exchange.calls == []
    assert protection.trailing.stats.monitor_only == 2
    trail = protection.trailing.trail(KEY)
    assert trail is not None and trail.stop_price == Decimal("62187.50")


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


async def test_a_position_reopened_while_away_gets_a_fresh_trail() -> None:
    """A stored trail only resumes for the same side and entry: a reopened position's old peak
    would otherwise put the stop above the new mark and close it at once."""
    store = ProtectionStore(":memory:")
    old = TrailState(
        Side.BUY, Decimal("59000"), Decimal("0.10"), Decimal("63000"), TrailPhase.TRAILING,
        Decimal("62685.00"), 1.0,
    )  # fmt: skip
    store.save_trail(KEY, old)
    no_rest: Any = None  # every exchange call goes to the scripted exchange
    protection = UnifiedProtection(
        load_settings(), no_rest, store=store, instruments={"BTCUSDT": BTC}
    )
    scripted = ScriptedExchange()
    protection.trailing._exchange = scripted  # type: ignore[assignment]
    protection.aged._exchange = scripted  # type: ignore[assignment]
    await protection.start(load_instruments=False)
    try:
        protection.router.on_core_event(PositionOpened(view("60100")))
        await wait_for(protection.idle, what="idle")
        trail = protection.trailing.trail(KEY)
        assert trail is not None and trail.phase is TrailPhase.WATCHING
        assert trail.stop_price is None and protection.trailing.stats.resumed == 0
        assert scripted.calls == []
    finally:
        await protection.stop()
        store.close()
