"""`POST /v5/position/trading-stop` of the simulated exchange: checks, Bybit's answers, history."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from bybit_hybrid.sim.history import EventKind
from bybit_hybrid.sim.numbers import times_1e8
from bybit_hybrid.sim.params import (
    ExchangeError,
    StopChange,
    modifies,
    params_error,
    parse_idx,
    parse_stop_change,
)
from bybit_hybrid.sim.positions import Position, Side

if TYPE_CHECKING:
    from bybit_hybrid.sim.exchange import Exchange


def trading_stop(
    ex: Exchange, params: Mapping[str, Any], now_ms: int, raw_body: str = ""
) -> dict[str, Any]:
    """`POST /v5/position/trading-stop`; every request is recorded with its result."""
    try:
        _trading_stop(ex, params, now_ms)
    except ExchangeError as exc:
        _record_stop_request(ex, now_ms, params, raw_body, exc)
        raise
    _record_stop_request(ex, now_ms, params, raw_body, None)
    return {}


def _record_stop_request(
    ex: Exchange,
    now_ms: int,
    params: Mapping[str, Any],
    raw_body: str,
    error: ExchangeError | None,
) -> None:
    symbol = params.get("symbol")
    idx_raw = params.get("positionIdx")
    ex.history.record(
        now_ms,
        EventKind.TRADING_STOP,
        str(symbol),
        idx_raw if isinstance(idx_raw, int) and not isinstance(idx_raw, bool) else None,
        received_ms=now_ms,
        body=dict(params),
        raw_body=raw_body,
        ret_code=0 if error is None else error.ret_code,
        ret_msg="OK" if error is None else error.ret_msg,
    )


def _trading_stop(ex: Exchange, params: Mapping[str, Any], now_ms: int) -> None:
    if params.get("category") != "linear":
        raise params_error("category invalid")
    inst = ex.instrument(params.get("symbol"))
    mode = params.get("tpslMode", "Full")
    if mode not in ("Full", "Partial"):
        raise params_error("tpslMode invalid")
    if mode == "Partial":
        raise params_error("the simulator supports tpslMode Full only")
    idx = parse_idx(params.get("positionIdx", 0))
    if idx not in ex.mode(inst.symbol).indexes:
        raise ExchangeError(10001, "position idx not match position mode")
    change = parse_stop_change(params, inst)
    pos = ex.positions.get((inst.symbol, idx))
    if pos is None or not pos.is_open:
        raise ExchangeError(10001, "can not set tp/sl/ts for zero position")
    if not modifies(pos, change):
        raise ExchangeError(34040, "not modified")
    _check_stop_sides(ex, pos, change)
    _apply_stop_change(ex, pos, change, now_ms)


def _check_stop_sides(ex: Exchange, pos: Position, change: StopChange) -> None:
    side = pos.side.value
    if change.stop_loss and change.stop_loss != pos.stop_loss:
        trigger = change.sl_trigger_by or pos.sl_trigger_by
        base = ex.trigger_price(pos.symbol, trigger)
        if (change.stop_loss - base) * pos.side.sign >= 0:
            rel = "lower" if pos.side is Side.BUY else "greater"
            raise ExchangeError(
                10001,
                f"StopLoss:{times_1e8(change.stop_loss)} set for {side} position should "
                f"{rel} than base_price:{times_1e8(base)}??{trigger.value}",
            )
    if change.take_profit and change.take_profit != pos.take_profit:
        trigger = change.tp_trigger_by or pos.tp_trigger_by
        base = ex.trigger_price(pos.symbol, trigger)
        if (change.take_profit - base) * pos.side.sign <= 0:
            rel = "greater" if pos.side is Side.BUY else "lower"
            raise ExchangeError(
                10001,
                f"TakeProfit:{times_1e8(change.take_profit)} set for {side} position should "
                f"{rel} than base_price:{times_1e8(base)}??{trigger.value}",
            )


def _apply_stop_change(ex: Exchange, pos: Position, change: StopChange, now_ms: int) -> None:
    if change.take_profit is not None:
        pos.take_profit = change.take_profit
    if change.stop_loss is not None:
        pos.stop_loss = change.stop_loss
    if change.trailing_stop is not None:
        pos.trailing_stop = change.trailing_stop
    if change.active_price is not None:
        pos.active_price = change.active_price
    if change.tp_trigger_by is not None:
        pos.tp_trigger_by = change.tp_trigger_by
    if change.sl_trigger_by is not None:
        pos.sl_trigger_by = change.sl_trigger_by
    # A TP/SL edit is not a trade: seq stays, updatedTime moves.
    pos.updated_ms = now_ms
    ex.record_position(EventKind.CHANGE, pos, now_ms, None, cause="trading_stop")
    ex.push_positions(pos.symbol, pos.idx, now_ms)
