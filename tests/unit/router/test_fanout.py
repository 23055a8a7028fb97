"""Fanout: the seed handler is called inside `emit` while it keeps up; FIFO and isolation kept."""

from __future__ import annotations

import asyncio
import math
from decimal import Decimal
from typing import Any

import pytest

from bybit_hybrid.protocol.domain import PositionKey, Side, Source
from bybit_hybrid.protocol.events import MarkUpdated, PositionView
from bybit_hybrid.router import dispatch
from bybit_hybrid.router.fanout import Fanout
from tests.support import wait_for


@pytest.fixture(autouse=True)
def _no_inline_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    """Inline runs are asserted here: a preempted handler must not hand over to the task."""
    monkeypatch.setattr(dispatch, "INLINE_BUDGET_S", math.inf)


def _event(i: int) -> MarkUpdated:
    view = PositionView(
        key=PositionKey("BTCUSDT", 0),
        side=Side.BUY,
        size=Decimal("0.01"),
        entry_price=Decimal("50000"),
        mark_price=Decimal(50000 + i),
        unrealised_pnl=Decimal(i) / 100,
        leverage=Decimal(10),
        position_status="Normal",
        stop_loss=None,
        take_profit=None,
        trailing_stop=None,
        liq_price=None,
        open_time_ms=None,
        status="open",
        source=Source.TICKER,
        exchange_ts_ms=1,
        cs=i,
        seq=None,
        received_at=0.0,
    )
    return MarkUpdated(view)


async def test_the_handler_runs_inside_emit_with_no_loop_turn() -> None:
    seen: list[tuple[str, dict[str, Any]]] = []

    async def handler(name: str, payload: dict[str, Any]) -> None:
        seen.append((name, payload))

    fanout = Fanout(handler)
    fanout.start()
    await asyncio.sleep(0)
    fanout.emit([_event(1), _event(2)])
    # No await since emit: a frame's events reach the handler inside the frame's callback.
    assert [p["data"]["cs"] for _, p in seen] == [1, 2]
    assert seen[0][0] == "position_update" and seen[0][1]["exchange"] == "bybit"
    assert fanout.stats()["handled_events"] == 2
    await fanout.stop()


async def test_a_failing_handler_is_counted_and_the_next_event_delivered(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[int] = []

    async def handler(name: str, payload: dict[str, Any]) -> None:
        if payload["data"]["cs"] == 2:
            raise RuntimeError("boom")
        seen.append(payload["data"]["cs"])

    fanout = Fanout(handler)
    fanout.start()
    await asyncio.sleep(0)
    fanout.emit([_event(1), _event(2), _event(3)])
    assert seen == [1, 3]
    assert fanout.stats()["handler_errors"] == 1 and fanout.stats()["handled_events"] == 2
    assert "event handler" in caplog.text and "boom" in caplog.text
    await fanout.stop()


async def test_marks_conflate_while_the_handler_waits() -> None:
    gate = asyncio.Event()
    seen: list[int] = []

    async def handler(name: str, payload: dict[str, Any]) -> None:
        seen.append(payload["data"]["cs"])
        await gate.wait()

    fanout = Fanout(handler)
    fanout.start()
    await asyncio.sleep(0)
    fanout.emit([_event(i) for i in range(50)])  # one position: marks replace each other
    assert seen == [0] and fanout.stats()["mailbox_backlog"] == 1
    gate.set()
    await wait_for(lambda: fanout.stats()["handled_events"] == 2)
    assert seen == [0, 49] and fanout.stats()["marks_conflated"] == 48
    await fanout.stop()
