"""Bybit field tables: the sim's own wire names for positions, tickers, instruments, orders."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

from bybit_hybrid.sim.instruments import Instrument
from bybit_hybrid.sim.numbers import amount_str, dec_str
from bybit_hybrid.sim.positions import (
    MAINTENANCE_MARGIN_RATE,
    Position,
    Side,
    break_even_price,
    liq_price,
)

# Field order follows the documented examples (F13 for WS, F16 for REST).
WS_POSITION_FIELDS: Final = (
    "positionIdx", "tradeMode", "riskId", "riskLimitValue", "symbol", "side", "size",
    "entryPrice", "sessionAvgPrice", "leverage", "breakEvenPrice", "positionValue",
    "positionBalance", "markPrice", "positionIM", "positionIMByMp", "positionMM",
    "positionMMByMp", "takeProfit", "stopLoss", "trailingStop", "unrealisedPnl",
    "curRealisedPnl", "cumRealisedPnl", "createdTime", "updatedTime", "openTime", "tpslMode",
    "liqPrice", "bustPrice", "category", "positionStatus", "adlRankIndicator", "autoAddMargin",
    "leverageSysUpdatedTime", "mmrSysUpdatedTime", "seq", "isReduceOnly",
)  # fmt: skip
REST_POSITION_FIELDS: Final = (
    "positionIdx", "riskId", "riskLimitValue", "symbol", "side", "size", "avgPrice",
    "positionValue", "tradeMode", "positionStatus", "autoAddMargin", "adlRankIndicator",
    "leverage", "breakEvenPrice", "positionBalance", "markPrice", "liqPrice", "bustPrice",
    "positionMM", "positionMMByMp", "positionIM", "positionIMByMp", "tpslMode", "takeProfit",
    "stopLoss", "trailingStop", "unrealisedPnl", "curRealisedPnl", "cumRealisedPnl", "seq",
    "isReduceOnly", "mmrSysUpdatedTime", "leverageSysUpdatedTime", "sessionAvgPrice",
    "createdTime", "updatedTime", "openTime",
)  # fmt: skip
# The one naming difference between the two: WS says entryPrice, REST says avgPrice.
_WS_RENAMES: Final = {"entryPrice": "_avg"}
_REST_RENAMES: Final = {"avgPrice": "_avg"}
# Fields Bybit sends as JSON numbers or booleans; every other position field is a string.
POSITION_INT_FIELDS: Final = frozenset(
    {"positionIdx", "tradeMode", "riskId", "autoAddMargin", "adlRankIndicator", "openTime", "seq"}
)
POSITION_BOOL_FIELDS: Final = frozenset({"isReduceOnly"})
REST_TICKER_EXTRA: Final = {
    "deliveryTime": "0",
    "basisRate": "",
    "deliveryFeeRate": "",
    "predictedDeliveryPrice": "",
    "basis": "",
}


def _price_text(value: Decimal) -> str:
    return "0" if value == 0 else dec_str(value)


def _position_values(pos: Position, inst: Instrument, seq: int, mark: Decimal) -> dict[str, Any]:
    """Every field of a position row, in Bybit's order (sizes and margins, then the rest)."""
    return {**_size_values(pos, mark), **_state_values(pos, inst, seq, mark)}


def _size_values(pos: Position, mark: Decimal) -> dict[str, Any]:
    value = pos.size * pos.avg_price
    value_by_mark = pos.size * mark
    return {
        "positionIdx": pos.idx,
        "tradeMode": 0,
        "riskId": 1,
        "riskLimitValue": "2000000",
        "symbol": pos.symbol,
        "side": pos.side.value,
        "size": dec_str(pos.size),
        "_avg": _price_text(pos.avg_price),
        "sessionAvgPrice": "",
        "leverage": dec_str(pos.leverage),
        "breakEvenPrice": amount_str(break_even_price(pos)),
        "positionValue": amount_str(value),
        "positionBalance": "0",
        "markPrice": dec_str(mark),
        "positionIM": amount_str(value / pos.leverage),
        "positionIMByMp": amount_str(value_by_mark / pos.leverage),
        "positionMM": amount_str(value * MAINTENANCE_MARGIN_RATE),
        "positionMMByMp": amount_str(value_by_mark * MAINTENANCE_MARGIN_RATE),
    }


def _state_values(pos: Position, inst: Instrument, seq: int, mark: Decimal) -> dict[str, Any]:
    liq = liq_price(pos)
    if liq:
        liq = (liq / inst.tick_size).to_integral_value() * inst.tick_size
    return {
        "takeProfit": _price_text(pos.take_profit),
        "stopLoss": _price_text(pos.stop_loss),
        "trailingStop": _price_text(pos.trailing_stop),
        "unrealisedPnl": amount_str(pos.unrealised_pnl(mark)),
        "curRealisedPnl": amount_str(pos.cur_realised_pnl),
        "cumRealisedPnl": amount_str(pos.cum_realised_pnl),
        "createdTime": str(pos.created_ms),
        "updatedTime": str(pos.updated_ms),
        "openTime": pos.open_time_ms,
        "tpslMode": "Full",
        "liqPrice": _price_text(liq),
        "bustPrice": "",
        "category": "linear",
        "positionStatus": pos.status.value,
        "adlRankIndicator": 2 if pos.is_open else 0,
        "autoAddMargin": 0,
        "leverageSysUpdatedTime": "",
        "mmrSysUpdatedTime": "",
        "seq": seq,
        "isReduceOnly": False,
    }


def ws_position_row(pos: Position, inst: Instrument, seq: int, mark: Decimal) -> dict[str, Any]:
    """One element of a private `position` push's data array."""
    values = _position_values(pos, inst, seq, mark)
    return {name: values[_WS_RENAMES.get(name, name)] for name in WS_POSITION_FIELDS}


def rest_position_row(pos: Position, inst: Instrument, seq: int, mark: Decimal) -> dict[str, Any]:
    """One element of `/v5/position/list` result.list (avgPrice, no category)."""
    values = _position_values(pos, inst, seq, mark)
    return {name: values[_REST_RENAMES.get(name, name)] for name in REST_POSITION_FIELDS}


def rest_ticker_row(fields: dict[str, str]) -> dict[str, str]:
    """A `/v5/market/tickers` list item: the WS ticker fields plus the REST-only ones."""
    return {**fields, **REST_TICKER_EXTRA}


def instrument_row(inst: Instrument, launch_ms: int) -> dict[str, Any]:
    """A `/v5/market/instruments-info` list item for a linear perpetual."""
    max_price = (inst.base_price * 100 / inst.tick_size).to_integral_value() * inst.tick_size
    return {
        "symbol": inst.symbol,
        "contractType": "LinearPerpetual",
        "status": inst.status,
        "baseCoin": inst.base_coin,
        "quoteCoin": inst.quote_coin,
        "launchTime": str(launch_ms),
        "deliveryTime": "0",
        "deliveryFeeRate": "",
        "priceScale": str(inst.price_scale),
        "leverageFilter": {
            "minLeverage": "1",
            "maxLeverage": f"{inst.max_leverage:.2f}",
            "leverageStep": "0.01",
        },
        "priceFilter": {
            "minPrice": str(inst.tick_size),
            "maxPrice": str(max_price),
            "tickSize": str(inst.tick_size),
        },
        "lotSizeFilter": {
            "maxOrderQty": str(inst.max_order_qty),
            "minOrderQty": str(inst.min_order_qty),
            "qtyStep": str(inst.qty_step),
            "postOnlyMaxOrderQty": str(inst.max_order_qty),
            "maxMktOrderQty": str(inst.max_order_qty),
            "minNotionalValue": "5",
        },
        "unifiedMarginTrade": True,
        "fundingInterval": 480,
        "settleCoin": inst.settle_coin,
        "copyTrading": "both",
        "upperFundingRate": "0.005",
        "lowerFundingRate": "-0.005",
        "isPreListing": False,
        "preListingInfo": None,
    }


@dataclass(frozen=True, slots=True)
class OrderFill:
    """A filled market order as the sim reports it on the `order`/`execution` topics."""

    order_id: str
    order_link_id: str
    exec_id: str
    symbol: str
    side: Side
    position_idx: int
    qty: Decimal
    price: Decimal
    closed_qty: Decimal
    fee: Decimal
    mark: Decimal
    index: Decimal
    reduce_only: bool
    stop_order_type: str
    seq: int
    now_ms: int
    # What was ordered when a partial-fill fault let only `qty` through (the rest cancelled).
    ordered_qty: Decimal | None = None


def order_row(fill: OrderFill) -> dict[str, Any]:
    """One element of a private `order` push for a filled market order. A partly filled one is
    `Cancelled` with its `cumExecQty` (Bybit: a derivatives order with this status may have an
    executed qty)."""
    value = amount_str(fill.qty * fill.price)
    ordered = fill.qty if fill.ordered_qty is None else fill.ordered_qty
    return {
        "category": "linear",
        "symbol": fill.symbol,
        "orderId": fill.order_id,
        "orderLinkId": fill.order_link_id,
        "blockTradeId": "",
        "side": fill.side.value,
        "positionIdx": fill.position_idx,
        "orderStatus": "Filled" if ordered == fill.qty else "Cancelled",
        "cancelType": "UNKNOWN",
        "rejectReason": "EC_NoError",
        "avgPrice": dec_str(fill.price),
        "leavesQty": "0",
        "leavesValue": "0",
        "qty": dec_str(ordered),
        "cumExecQty": dec_str(fill.qty),
        "cumExecValue": value,
        "cumExecFee": amount_str(fill.fee),
        "timeInForce": "IOC",
        "orderType": "Market",
        "stopOrderType": fill.stop_order_type,
        "price": "0",
        "triggerPrice": "",
        "takeProfit": "",
        "stopLoss": "",
        "reduceOnly": fill.reduce_only,
        "closeOnTrigger": bool(fill.stop_order_type),
        "createdTime": str(fill.now_ms),
        "updatedTime": str(fill.now_ms),
    }


def execution_row(fill: OrderFill) -> dict[str, Any]:
    """One element of a private `execution` push; carries the same seq as the position."""
    return {
        "category": "linear",
        "symbol": fill.symbol,
        "execId": fill.exec_id,
        "execPrice": dec_str(fill.price),
        "execQty": dec_str(fill.qty),
        "execType": "Trade",
        "execValue": amount_str(fill.qty * fill.price),
        "execFee": amount_str(fill.fee),
        "feeRate": "0.00055",
        "orderId": fill.order_id,
        "orderLinkId": fill.order_link_id,
        "side": fill.side.value,
        "orderType": "Market",
        "stopOrderType": fill.stop_order_type,
        "orderPrice": "0",
        "orderQty": dec_str(fill.qty),
        "leavesQty": "0",
        "closedSize": dec_str(fill.closed_qty),
        "markPrice": dec_str(fill.mark),
        "indexPrice": dec_str(fill.index),
        "execTime": str(fill.now_ms),
        "isMaker": False,
        "seq": fill.seq,
    }
