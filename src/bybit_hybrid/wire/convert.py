"""The one place Bybit's wire values become domain values: Decimal, "" → None, names unified.

Bybit sends prices and sizes as decimal strings. "" means "none" everywhere; for TP/SL,
trailing stop and liquidation price "0" (or "0.00") also means "unset" (BYBIT_V5.md §8.8).
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from bybit_hybrid.domain import (
    Instrument,
    PositionKey,
    PositionSnapshot,
    Side,
    Source,
    TickerUpdate,
)
from bybit_hybrid.wire.decode import TickerMessage
from bybit_hybrid.wire.errors import WireDecodeError
from bybit_hybrid.wire.messages import InstrumentInfo, RestPosition, TickerData, WsPosition

_SIDES = {"Buy": Side.BUY, "Sell": Side.SELL, "": None}
_ZERO = Decimal(0)


# No price or size Bybit sends comes near 10**30 (or 10**-30 but for zero); a value beyond
# that is garbage, and arithmetic on it (PnL = (mark - entry) * size) could overflow the
# Decimal context and raise from the core, which must never raise on input.
MAX_DECIMAL_EXPONENT = 30


def plausible(value: Decimal) -> bool:
    """Finite, and zero or within 10**±MAX_DECIMAL_EXPONENT."""
    return value.is_finite() and (
        not value or -MAX_DECIMAL_EXPONENT <= value.adjusted() <= MAX_DECIMAL_EXPONENT
    )


def decimal_or_none(value: str | None, field: str) -> Decimal | None:
    """ "" or absent → None; a decimal string → Decimal; anything else names the field."""
    if not value:
        return None
    try:
        result = Decimal(value)
    except InvalidOperation:
        raise WireDecodeError(f"{field} is not a decimal", value, field) from None
    if not result.is_finite():
        raise WireDecodeError(f"{field} is not a finite decimal", value, field)
    if not plausible(result):
        raise WireDecodeError(f"{field} is out of range (beyond 1e±30)", value, field)
    return result


def price_unset_zero(value: str, field: str) -> Decimal | None:
    """For TP/SL/trailing/liq prices, where Bybit writes "0" for "unset"."""
    result = decimal_or_none(value, field)
    return None if result is None or result == _ZERO else result


def side_or_none(value: str, field: str = "side") -> Side | None:
    try:
        return _SIDES[value]
    except KeyError:
        raise WireDecodeError(f"{field} is not Buy, Sell or empty", value, field) from None


def int_or_none(value: str | int | None, field: str) -> int | None:
    """Millisecond timestamps and seq: ints or decimal-integer strings; "" → None."""
    if value is None or value == "":
        return None
    if isinstance(value, int):
        return value
    try:
        return int(value)
    except ValueError:
        raise WireDecodeError(f"{field} is not an integer", value, field) from None


def _position(
    row: WsPosition | RestPosition, entry: str, source: Source, ts_ms: int | None
) -> PositionSnapshot:
    size = decimal_or_none(row.size, "size") or _ZERO
    if size < 0:
        raise WireDecodeError("size is negative", row.size, "size")
    side = side_or_none(row.side)
    open_time = row.openTime or None  # documented default 0 means unknown
    return PositionSnapshot(
        key=PositionKey(row.symbol, row.positionIdx),
        side=side if size > 0 else None,
        size=size,
        entry_price=price_unset_zero(entry, "entryPrice"),
        mark_price=decimal_or_none(row.markPrice, "markPrice"),
        leverage=decimal_or_none(row.leverage, "leverage"),
        unrealised_pnl=decimal_or_none(row.unrealisedPnl, "unrealisedPnl"),
        cum_realised_pnl=decimal_or_none(row.cumRealisedPnl, "cumRealisedPnl"),
        stop_loss=price_unset_zero(row.stopLoss, "stopLoss"),
        take_profit=price_unset_zero(row.takeProfit, "takeProfit"),
        trailing_stop=price_unset_zero(row.trailingStop, "trailingStop"),
        liq_price=price_unset_zero(row.liqPrice, "liqPrice"),
        position_status=row.positionStatus,
        seq=int_or_none(row.seq, "seq"),
        created_time_ms=int_or_none(row.createdTime, "createdTime"),
        updated_time_ms=int_or_none(row.updatedTime, "updatedTime"),
        open_time_ms=open_time,
        source=source,
        exchange_ts_ms=ts_ms,
    )


def position_from_ws(row: WsPosition, creation_time_ms: int | None) -> PositionSnapshot:
    """A private-stream row; its average entry is `entryPrice`."""
    return _position(row, row.entryPrice, Source.POSITION, creation_time_ms)


def position_from_rest(row: RestPosition, response_time_ms: int | None) -> PositionSnapshot:
    """A `position/list` row; its average entry is `avgPrice`."""
    return _position(row, row.avgPrice, Source.REST, response_time_ms)


def ticker_from_wire(message: TickerMessage) -> TickerUpdate:
    return _ticker(message.data, message.is_snapshot, message.cs, message.ts_ms)


def ticker_from_rest(data: TickerData, response_time_ms: int) -> TickerUpdate:
    """A `market/tickers` row: every field present, so it acts as a snapshot."""
    return _ticker(data, True, None, response_time_ms)


def _ticker(data: TickerData, is_snapshot: bool, cs: int | None, ts_ms: int) -> TickerUpdate:
    return TickerUpdate(
        symbol=data.symbol,
        is_snapshot=is_snapshot,
        mark_price=decimal_or_none(data.markPrice, "markPrice"),
        last_price=decimal_or_none(data.lastPrice, "lastPrice"),
        index_price=decimal_or_none(data.indexPrice, "indexPrice"),
        cs=cs,
        ts_ms=ts_ms,
    )


def instrument_from_wire(info: InstrumentInfo) -> Instrument:
    tick = decimal_or_none(info.priceFilter.tickSize, "priceFilter.tickSize")
    step = decimal_or_none(info.lotSizeFilter.qtyStep, "lotSizeFilter.qtyStep")
    if tick is None or tick <= 0 or step is None or step <= 0:
        raise WireDecodeError("tickSize and qtyStep must be positive", info.symbol, "priceFilter")
    return Instrument(
        symbol=info.symbol,
        settle_coin=info.settleCoin,
        tick_size=tick,
        qty_step=step,
        min_order_qty=decimal_or_none(info.lotSizeFilter.minOrderQty, "minOrderQty") or _ZERO,
        status=info.status,
    )
