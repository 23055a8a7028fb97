"""Request checks of the simulated exchange: Bybit's error type, parameter parsers, stop edits."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal
from typing import Any
from urllib.parse import unquote

from bybit_hybrid.sim.instruments import Instrument
from bybit_hybrid.sim.numbers import parse_decimal
from bybit_hybrid.sim.positions import Position, Side, TriggerBy


class ExchangeError(Exception):
    """A business error answered as Bybit's envelope with HTTP 200 and this retCode."""

    def __init__(self, ret_code: int, ret_msg: str) -> None:
        super().__init__(f"{ret_code}: {ret_msg}")
        self.ret_code = ret_code
        self.ret_msg = ret_msg


def params_error(what: str) -> ExchangeError:
    return ExchangeError(10001, f"params error: {what}")


@dataclass(frozen=True, slots=True)
class StopChange:
    """A validated trading-stop request: new values (None = not sent)."""

    take_profit: Decimal | None
    stop_loss: Decimal | None
    trailing_stop: Decimal | None
    active_price: Decimal | None
    tp_trigger_by: TriggerBy | None
    sl_trigger_by: TriggerBy | None


def parse_side(raw: object) -> Side:
    if raw == "Buy":
        return Side.BUY
    if raw == "Sell":
        return Side.SELL
    raise params_error("side invalid")


def parse_idx(raw: object) -> int:
    if isinstance(raw, bool):
        raise params_error("positionIdx invalid")
    if isinstance(raw, str) and raw.isdigit():
        raw = int(raw)
    if not isinstance(raw, int) or raw not in (0, 1, 2):
        raise params_error("positionIdx invalid")
    return raw


def parse_limit(raw: str | None, default: int, maximum: int) -> int:
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= maximum:
        raise params_error(f"limit must be between 1 and {maximum}")
    return int(raw)


def parse_position_cursor(raw: str) -> tuple[str, int] | None:
    """Cursor `SYM:idx,SYM:idx` (already %-decoded once; decodes again if a client re-escaped)."""
    if not raw:
        return None
    if "%" in raw:
        raw = unquote(raw)
    head = raw.split(",", 1)[0]
    symbol, _, idx = head.partition(":")
    if not symbol or not idx.isdigit():
        raise params_error("cursor invalid")
    return (symbol, int(idx))


def parse_instrument_cursor(raw: str) -> str | None:
    if not raw:
        return None
    if "%" in raw:
        raw = unquote(raw)
    for part in raw.split("&"):
        name, _, value = part.partition("=")
        if name == "last" and value:
            return value
    raise params_error("cursor invalid")


def partial_qty(inst: Instrument, qty: Decimal, fraction: Decimal | None) -> Decimal:
    """The qty a partial-fill fault lets through: `fraction` of it rounded down to qtyStep, at
    least one step; the whole qty when it cannot be split."""
    if fraction is None:
        return qty
    part = (qty * fraction / inst.qty_step).to_integral_value(ROUND_FLOOR) * inst.qty_step
    part = max(part, inst.qty_step)
    return part if part < qty else qty


def check_order_qty(inst: Instrument, qty: Decimal) -> None:
    if qty <= 0 or qty % inst.qty_step != 0:
        raise ExchangeError(10001, f"Qty invalid: must be a multiple of qtyStep {inst.qty_step}")
    if qty < inst.min_order_qty:
        raise ExchangeError(10001, "The number of contracts exceeds minimum limit allowed")
    if qty > inst.max_order_qty:
        raise ExchangeError(
            10001, "The number of contracts exceeds maximum limit allowed: too large"
        )


def parse_price(params: Mapping[str, Any], name: str, inst: Instrument) -> Decimal | None:
    if name not in params:
        return None
    value = parse_decimal(params[name])
    if value is None or value < 0:
        raise params_error(f"{name} invalid")
    if value != 0 and name != "trailingStop" and not inst.on_tick(value):
        raise params_error(f"{name} must be a multiple of tickSize {inst.tick_size}")
    return value


def parse_trigger(params: Mapping[str, Any], name: str) -> TriggerBy | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    try:
        return TriggerBy(raw)
    except ValueError:
        raise params_error(f"{name} invalid") from None


def parse_stop_change(params: Mapping[str, Any], inst: Instrument) -> StopChange:
    return StopChange(
        take_profit=parse_price(params, "takeProfit", inst),
        stop_loss=parse_price(params, "stopLoss", inst),
        trailing_stop=parse_price(params, "trailingStop", inst),
        active_price=parse_price(params, "activePrice", inst),
        tp_trigger_by=parse_trigger(params, "tpTriggerBy"),
        sl_trigger_by=parse_trigger(params, "slTriggerBy"),
    )


def modifies(pos: Position, change: StopChange) -> bool:
    """False when nothing in the request differs from what is set (Bybit's 34040)."""
    pairs: list[tuple[object, object]] = [
        (change.take_profit, pos.take_profit),
        (change.stop_loss, pos.stop_loss),
        (change.trailing_stop, pos.trailing_stop),
    ]
    if change.take_profit:
        pairs.append((change.tp_trigger_by, pos.tp_trigger_by))
    if change.stop_loss:
        pairs.append((change.sl_trigger_by, pos.sl_trigger_by))
    if change.trailing_stop:
        pairs.append((change.active_price, pos.active_price))
    return any(new is not None and new != old for new, old in pairs)
