"""Recorded frames converted to domain values, and a compact position-row builder for tests."""

from __future__ import annotations

from decimal import Decimal

from bybit_hybrid.protocol.domain import (
    PositionKey,
    PositionSnapshot,
    Side,
    Source,
    TickerUpdate,
)
from bybit_hybrid.wire.convert import position_from_rest, position_from_ws, ticker_from_wire
from bybit_hybrid.wire.decode import (
    PositionMessage,
    TickerMessage,
    decode_rest_envelope,
    decode_result,
    decode_ws,
)
from bybit_hybrid.wire.messages import PositionListResult
from tests.fixtures import frame


def ws_positions(name: str) -> list[PositionSnapshot]:
    """The rows of a recorded private `position` push (F13–F15)."""
    message = decode_ws(frame(name))
    assert isinstance(message, PositionMessage)
    return [position_from_ws(row, message.creation_time_ms) for row in message.data]


def rest_positions(name: str) -> list[PositionSnapshot]:
    """The rows of a recorded `position/list` response (F16)."""
    envelope = decode_rest_envelope(frame(name))
    result = decode_result(envelope, PositionListResult)
    return [position_from_rest(row, envelope.time) for row in result.items]


def ticker(name: str) -> TickerUpdate:
    """A recorded `tickers.{symbol}` push (F10–F12)."""
    message = decode_ws(frame(name))
    assert isinstance(message, TickerMessage)
    return ticker_from_wire(message)


def pos(
    *,
    symbol: str = "BTCUSDT",
    idx: int = 0,
    side: Side | None = Side.BUY,
    size: str = "1",
    entry: str | None = "100",
    mark: str | None = "101",
    seq: int | None = 10,
    updated_ms: int | None = 1_000,
    stop_loss: str | None = None,
    source: Source = Source.POSITION,
    ts_ms: int | None = None,
) -> PositionSnapshot:
    """A position row; `size="0"` makes a flat row with side None, as `wire.convert` does."""
    amount = Decimal(size)
    return PositionSnapshot(
        key=PositionKey(symbol, idx),
        side=side if amount > 0 else None,
        size=amount,
        entry_price=Decimal(entry) if entry is not None and amount > 0 else None,
        mark_price=Decimal(mark) if mark is not None else None,
        leverage=Decimal(10),
        unrealised_pnl=None,
        cum_realised_pnl=None,
        stop_loss=Decimal(stop_loss) if stop_loss is not None else None,
        take_profit=None,
        trailing_stop=None,
        liq_price=None,
        position_status="Normal",
        seq=seq,
        created_time_ms=1,
        updated_time_ms=updated_ms,
        open_time_ms=None,
        source=source,
        exchange_ts_ms=ts_ms if ts_ms is not None else updated_ms,
    )


def tick(
    mark: str | None,
    *,
    cs: int | None,
    snapshot: bool = False,
    symbol: str = "BTCUSDT",
    ts_ms: int = 1_000,
    last: str | None = None,
) -> TickerUpdate:
    return TickerUpdate(
        symbol=symbol,
        is_snapshot=snapshot,
        mark_price=Decimal(mark) if mark is not None else None,
        last_price=Decimal(last) if last is not None else None,
        index_price=None,
        cs=cs,
        ts_ms=ts_ms,
    )
