"""Orders of the simulated exchange: `order/create` requests, reduce-only rules, fill pushes."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from bybit_hybrid.sim import fields
from bybit_hybrid.sim.history import CloseReason
from bybit_hybrid.sim.numbers import parse_decimal
from bybit_hybrid.sim.params import (
    ExchangeError,
    check_order_qty,
    params_error,
    parse_idx,
    parse_side,
    partial_qty,
)
from bybit_hybrid.sim.positions import TAKER_FEE_RATE, FillResult, Position, Side

if TYPE_CHECKING:
    from bybit_hybrid.sim.exchange import Exchange


def place_order(ex: Exchange, params: Mapping[str, Any], now_ms: int) -> dict[str, str]:
    """`POST /v5/order/create` for Market orders; returns Bybit's result object."""
    if params.get("category") != "linear":
        raise params_error("category invalid")
    inst = ex.instrument(params.get("symbol"))
    side = parse_side(params.get("side"))
    if params.get("orderType") != "Market":
        raise params_error("the simulator supports orderType Market only")
    qty = parse_decimal(params.get("qty"))
    if qty is None:
        raise params_error("qty invalid")
    idx = parse_idx(params.get("positionIdx", 0))
    reduce_only = params.get("reduceOnly", False)
    if not isinstance(reduce_only, bool):
        raise params_error("reduceOnly invalid")
    link_id = params.get("orderLinkId", "")
    if not isinstance(link_id, str):
        raise params_error("orderLinkId invalid")
    check_order_qty(inst, qty)
    fill_qty = partial_qty(inst, qty, ex.fill_fraction)
    order_id = ex.market_order(
        inst.symbol,
        side,
        fill_qty,
        idx,
        now_ms,
        reduce_only=reduce_only,
        order_link_id=link_id,
        check_qty=False,
        ordered_qty=qty,
    )
    return {"orderId": order_id, "orderLinkId": link_id}


def order_fill(
    ex: Exchange,
    pos: Position,
    result: FillResult,
    *,
    side: Side,
    price: Decimal,
    now_ms: int,
    source: CloseReason,
    order: tuple[str, str, bool, Decimal],
) -> fields.OrderFill:
    """The order/execution push of a fill; `order` is (id, link id, reduce-only, qty)."""
    order_id, order_link_id, reduce_only, ordered_qty = order
    stop_type = {CloseReason.STOP_LOSS: "StopLoss", CloseReason.TAKE_PROFIT: "TakeProfit"}
    return fields.OrderFill(
        order_id=order_id,
        order_link_id=order_link_id,
        exec_id=ex.new_id(),
        symbol=pos.symbol,
        side=side,
        position_idx=pos.idx,
        qty=result.filled_qty,
        price=price,
        closed_qty=result.closed_qty,
        fee=result.filled_qty * price * TAKER_FEE_RATE,
        mark=ex.prices.mark(pos.symbol),
        index=ex.prices.index(pos.symbol),
        reduce_only=reduce_only,
        stop_order_type=stop_type.get(source, ""),
        seq=ex._last_seq,
        now_ms=now_ms,
        ordered_qty=ordered_qty,
    )


def reduces_only(pos: Position, side: Side, *, reduce_only: bool) -> bool:
    """Whether the order may only reduce `pos` (asked, or hedge mode's opposite side); raises
    Bybit's 110017 when such an order has nothing to reduce."""
    if pos.idx != 0:
        # In hedge mode an order on the slot's opposite side can only reduce that slot.
        reduce_only = reduce_only or side.sign != (1 if pos.idx == 1 else -1)
    closing = pos.is_open and side is not pos.side
    if reduce_only and not closing:
        raise ExchangeError(110017, "current position is zero, cannot fix reduce-only order qty")
    return reduce_only
