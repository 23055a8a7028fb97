"""msgspec schemas for the Bybit V5 frames and REST bodies bybit-hybrid reads, in Bybit's names.

Only fields the product uses are declared; msgspec skips the rest cheaply. Numbers are strings
where Bybit sends strings (every price and size) and ints where Bybit sends ints (BYBIT_V5.md §8.8).
"""

from __future__ import annotations

import builtins

import msgspec


class WsEnvelope(msgspec.Struct, frozen=True):
    """Every WebSocket frame from Bybit, read in one pass; `data` is decoded later by topic.

    Operation replies carry op/success/ret_msg/conn_id/req_id (private pongs: op "pong" and
    args); topic pushes carry topic/type/ts/cs (public) or id/creationTime (private). The
    order-entry auth shape (retCode/retMsg) is accepted too, as some clients have seen it.
    """

    op: str | None = None
    success: bool | None = None
    ret_msg: str | None = None
    conn_id: str | None = None
    req_id: str | None = None
    args: list[str | int | float] | None = None
    retCode: int | None = None
    retMsg: str | None = None
    topic: str | None = None
    type: str | None = None
    ts: int | None = None
    cs: int | None = None
    id: str | None = None
    creationTime: int | None = None
    data: msgspec.Raw = msgspec.Raw()


class TickerData(msgspec.Struct, frozen=True):
    """`tickers.{symbol}` data (an object, not an array); every field but symbol may be absent."""

    symbol: str
    markPrice: str | None = None
    lastPrice: str | None = None
    indexPrice: str | None = None
    bid1Price: str | None = None
    ask1Price: str | None = None


class _PositionFields(msgspec.Struct, frozen=True):
    """Position fields common to the private stream and REST (they differ in entry price name)."""

    symbol: str
    positionIdx: int
    side: str
    size: str
    markPrice: str = ""
    leverage: str = ""
    unrealisedPnl: str = ""
    cumRealisedPnl: str = ""
    takeProfit: str = ""
    stopLoss: str = ""
    trailingStop: str = ""
    liqPrice: str = ""
    positionStatus: str = ""
    # Typed "long" but documented as the string "-1" for never-traded symbols: accept both.
    seq: int | str | None = None
    createdTime: str = ""
    updatedTime: str = ""
    openTime: int | None = None


class WsPosition(_PositionFields, frozen=True):
    """One row of a private `position` push: the average entry is `entryPrice` here."""

    entryPrice: str = ""
    category: str = ""


class RestPosition(_PositionFields, frozen=True):
    """One row of `GET /v5/position/list`: the average entry is `avgPrice` here."""

    avgPrice: str = ""


class RestEnvelope(msgspec.Struct, frozen=True):
    """The common REST body; `result` is decoded by the caller once retCode says success."""

    retCode: int
    retMsg: str = ""
    result: msgspec.Raw = msgspec.Raw()
    time: int | None = None


class PositionListResult(msgspec.Struct, frozen=True):
    # Bybit names this field "list", which would shadow the builtin inside the class.
    items: builtins.list[RestPosition] = msgspec.field(name="list")
    nextPageCursor: str = ""
    category: str = ""


class TickersResult(msgspec.Struct, frozen=True):
    # Bybit names this field "list", which would shadow the builtin inside the class.
    items: builtins.list[TickerData] = msgspec.field(name="list")
    category: str = ""


class PriceFilter(msgspec.Struct, frozen=True):
    tickSize: str


class LotSizeFilter(msgspec.Struct, frozen=True):
    qtyStep: str
    minOrderQty: str = "0"


class InstrumentInfo(msgspec.Struct, frozen=True):
    symbol: str
    priceFilter: PriceFilter
    lotSizeFilter: LotSizeFilter
    status: str = ""
    settleCoin: str = ""


class InstrumentsResult(msgspec.Struct, frozen=True):
    # Bybit names this field "list", which would shadow the builtin inside the class.
    items: builtins.list[InstrumentInfo] = msgspec.field(name="list")
    nextPageCursor: str = ""
    category: str = ""


class ServerTimeResult(msgspec.Struct, frozen=True):
    timeSecond: str
    timeNano: str


class EmptyResult(msgspec.Struct, frozen=True):
    """trading-stop answers `{}`; anything in it is ignored."""


class OrderCreateResult(msgspec.Struct, frozen=True):
    orderId: str
    orderLinkId: str = ""


class TradingStopRequest(msgspec.Struct, frozen=True, omit_defaults=True):
    """Body of `POST /v5/position/trading-stop`; prices are strings already quantised."""

    category: str
    symbol: str
    positionIdx: int
    tpslMode: str  # documented as required: always "Full" here
    stopLoss: str | None = None
    takeProfit: str | None = None
    slTriggerBy: str | None = None
    tpTriggerBy: str | None = None


class OrderCreateRequest(msgspec.Struct, frozen=True, omit_defaults=True):
    """Body of `POST /v5/order/create` (market orders, used for reduce-only closes)."""

    category: str
    symbol: str
    side: str
    orderType: str
    qty: str
    positionIdx: int = 0
    reduceOnly: bool = False
    orderLinkId: str | None = None
