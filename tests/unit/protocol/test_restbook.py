"""The REST-only book: the hybrid core's events from polls, only on real changes."""

from __future__ import annotations

from decimal import Decimal

from bybit_hybrid.protocol.domain import Source, TickerUpdate
from bybit_hybrid.protocol.events import (
    MarkUpdated,
    PositionChanged,
    PositionClosed,
    PositionOpened,
)
from bybit_hybrid.protocol.restbook import RestBook
from tests.unit.protocol.builders import pos

D = Decimal


def _ticker(symbol: str, mark: str, ts_ms: int) -> TickerUpdate:
    return TickerUpdate(symbol, True, D(mark), None, None, None, ts_ms)


def test_a_poll_sequence_emits_open_mark_change_and_close_each_once() -> None:
    book = RestBook()
    row = pos(source=Source.REST, ts_ms=1_000)
    [opened] = book.on_positions([row], 1.0, requested_at=0.9, response_ts_ms=1_000)
    assert isinstance(opened, PositionOpened) and opened.view.source is Source.REST
    assert book.on_positions([row], 2.0, requested_at=1.9) == []  # same row: nothing
    [marked] = book.on_tickers([_ticker("BTCUSDT", "105", 2_000)], 2.1)
    assert isinstance(marked, MarkUpdated) and marked.view.mark_price == D("105")
    assert marked.view.source is Source.REST and marked.view.cs is None
    assert book.on_tickers([_ticker("BTCUSDT", "105", 3_000)], 3.1) == []  # unchanged mark
    assert book.on_tickers([_ticker("ETHUSDT", "7", 3_000)], 3.1) == []  # not held
    grown = pos(size="2", seq=11, updated_ms=2_000, source=Source.REST)
    [changed] = book.on_positions([grown], 4.0, requested_at=3.9)
    assert isinstance(changed, PositionChanged) and changed.changed == {"size"}
    assert changed.view.mark_price == D("105")  # valued at the polled mark
    # A missing row is confirmed before the close is emitted (issue 19 F1).
    assert book.on_positions([], 5.0, requested_at=4.9, response_ts_ms=5_000) == []
    assert book.take_confirmations() == ["BTCUSDT"]
    flat = pos(size="0", seq=12, updated_ms=4_950, source=Source.REST, ts_ms=5_010)
    [closed] = book.on_confirm("BTCUSDT", [flat], 5.1, requested_at=5.0, response_ts_ms=5_010)
    assert isinstance(closed, PositionClosed) and closed.view.size == 0
    assert closed.view.exchange_ts_ms == 5_010
    assert book.held_symbols() == set() and len(book.marks) == 0  # the old mark is gone
