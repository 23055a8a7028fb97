"""Router: events routed by class, per-consumer mailboxes, marks conflated, failures isolated."""

from __future__ import annotations

import asyncio
import logging
from decimal import Decimal

import pytest

from bybit_hybrid.protocol.domain import PositionKey, Side, Source
from bybit_hybrid.protocol.events import (
    MarkUpdated,
    PositionChanged,
    PositionClosed,
    PositionOpened,
    PositionView,
)
from bybit_hybrid.protocol.hybrid import Reconciled
from bybit_hybrid.protocol.session import SessionState, StateChanged
from bybit_hybrid.router.router import EventRouter, RoutedEvent, percentile
from tests.support import wait_for


def _view(symbol: str, mark: int, *, status: str = "open") -> PositionView:
    return PositionView(
        key=PositionKey(symbol, 0),
        side=Side.BUY,
        size=Decimal(1) if status == "open" else Decimal(0),
        entry_price=Decimal(100),
        mark_price=Decimal(mark),
        unrealised_pnl=None,
        leverage=Decimal(10),
        position_status="Normal",
        stop_loss=None,
        take_profit=None,
        trailing_stop=None,
        liq_price=None,
        open_time_ms=None,
        status=status,  # type: ignore[arg-type]
        source=Source.TICKER,
        exchange_ts_ms=1,
        cs=mark,
        seq=None,
        received_at=0.0,
    )


def _mark(symbol: str, mark: int) -> MarkUpdated:
    return MarkUpdated(_view(symbol, mark))


def _label(routed: RoutedEvent) -> object:
    event = routed.event
    if isinstance(event, Reconciled):
        return "reconciled"
    price = event.view.mark_price
    return (routed.name, event.key.symbol, None if price is None else int(price))


async def test_each_consumer_gets_events_in_order_and_a_failure_is_isolated(
    caplog: pytest.LogCaptureFixture,
) -> None:
    router = EventRouter()
    good: list[object] = []
    bad_calls: list[object] = []

    async def good_handler(routed: RoutedEvent) -> None:
        good.append(_label(routed))

    async def flaky(routed: RoutedEvent) -> None:
        bad_calls.append(_label(routed))
        if _label(routed) == ("PositionChanged", "A", 2):
            raise RuntimeError("boom")

    for event_class in (PositionOpened, PositionChanged):
        router.on(event_class, good_handler, name="good")
        router.on(event_class, flaky, name="flaky")
    await router.start()
    router.emit(PositionOpened(_view("A", 0)))
    for i in range(1, 5):
        router.emit(PositionChanged(_view("A", i), frozenset({"size"})))
    with caplog.at_level(logging.ERROR):
        await router.drain()
    await router.stop()
    expected = [("PositionOpened", "A", 0), *[("PositionChanged", "A", i) for i in range(1, 5)]]
    assert good == expected and bad_calls == expected
    stats = router.stats()
    assert stats["flaky"]["errors"] == 1 and stats["flaky"]["handled"] == 4
    assert stats["good"]["errors"] == 0 and stats["good"]["handled"] == 5
    assert "handler flaky failed on PositionChanged" in caplog.text


async def test_a_consumer_gets_only_the_classes_it_subscribed_to() -> None:
    router = EventRouter()
    marks: list[object] = []
    lifecycle: list[object] = []

    async def on_marks(routed: RoutedEvent) -> None:
        marks.append(_label(routed))

    async def on_lifecycle(routed: RoutedEvent) -> None:
        lifecycle.append(_label(routed))

    router.on(MarkUpdated, on_marks)
    for event_class in (PositionOpened, PositionClosed, Reconciled):
        router.on(event_class, on_lifecycle)
    await router.start()
    router.on_core_event(PositionOpened(_view("A", 1)))
    router.on_core_event(_mark("A", 2))
    router.on_core_event(StateChanged("public-1", SessionState.LIVE, SessionState.STALE, "quiet"))
    router.on_core_event(PositionClosed(_view("A", 3, status="closed")))
    router.on_core_event(Reconciled("reconnect", 0, 1))
    await router.drain()
    await router.stop()
    assert marks == [("MarkUpdated", "A", 2)]
    assert lifecycle == [("PositionOpened", "A", 1), ("PositionClosed", "A", 3), "reconciled"]
    with pytest.raises(ValueError, match="carries no"):
        router.on(StateChanged, on_marks)  # type: ignore[arg-type]


async def test_marks_conflate_per_key_for_a_slow_consumer() -> None:
    router = EventRouter()
    seen: list[object] = []
    gate = asyncio.Event()

    async def slow(routed: RoutedEvent) -> None:
        await gate.wait()
        seen.append(_label(routed))

    for event_class in (MarkUpdated, PositionOpened, PositionClosed):
        router.on(event_class, slow, name="slow")
    await router.start()
    router.emit(PositionOpened(_view("A", 0)))  # taken at once; blocks on the gate
    await asyncio.sleep(0)
    for i in range(100):
        router.emit(_mark("A", i))
        router.emit(_mark("B", i))
    router.emit(PositionClosed(_view("A", 100, status="closed")))
    assert router.stats()["slow"]["backlog"] == 3
    gate.set()
    await router.drain()
    await router.stop()
    assert seen == [
        ("PositionOpened", "A", 0),
        ("MarkUpdated", "A", 99),
        ("MarkUpdated", "B", 99),
        ("PositionClosed", "A", 100),
    ]
    assert router.stats()["slow"]["marks_conflated"] == 198


async def test_a_mark_never_overtakes_a_lifecycle_event_of_its_position() -> None:
    router = EventRouter()
    seen: list[object] = []
    gate = asyncio.Event()

    async def slow(routed: RoutedEvent) -> None:
        await gate.wait()
        seen.append(_label(routed))

    for event_class in (MarkUpdated, PositionChanged):
        router.on(event_class, slow, name="slow")
    await router.start()
    router.emit(_mark("A", 1))  # taken at once; blocks on the gate
    await asyncio.sleep(0)
    router.emit(_mark("A", 2))
    router.emit(PositionChanged(_view("A", 3), frozenset({"size"})))
    router.emit(_mark("A", 4))
    router.emit(_mark("A", 5))
    gate.set()
    await wait_for(router.idle)
    await router.stop()
    assert seen == [
        ("MarkUpdated", "A", 1),
        ("MarkUpdated", "A", 2),
        ("PositionChanged", "A", 3),
        ("MarkUpdated", "A", 5),
    ]


async def test_latency_is_measured_from_the_original_receipt() -> None:
    clock = [100.0]
    router = EventRouter(clock=lambda: clock[0])

    async def handler(routed: RoutedEvent) -> None:
        clock[0] += 0.004

    router.on(MarkUpdated, handler, name="h")
    await router.start()
    router.emit(_mark("A", 1), received_at_s=99.0)  # derived from an event received at 99
    await router.drain()
    await router.stop()
    assert router.stats()["h"]["latency_max_ms"] == pytest.approx(1004.0)


def test_percentile_nearest_rank() -> None:
    samples = [float(i) for i in range(1, 101)]
    assert percentile(samples, 50) == 50.0
    assert percentile(samples, 99) == 99.0
    assert percentile([], 99) == 0.0
