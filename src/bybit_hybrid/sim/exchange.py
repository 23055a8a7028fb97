"""The pure simulated exchange: instruments, prices, positions, orders, TP/SL and REST queries.

No asyncio and no clock reads: every operation takes `now_ms` from the caller. Private-stream
pushes are queued in an outbox that the server drains after each operation.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal
from typing import Any, Final
from urllib.parse import quote, unquote

from bybit_hybrid.sim import fields
from bybit_hybrid.sim.history import CloseReason, EventKind, History
from bybit_hybrid.sim.instruments import Instrument, build_instruments
from bybit_hybrid.sim.numbers import ZERO, dec_str, parse_decimal, times_1e8
from bybit_hybrid.sim.positions import (
    TAKER_FEE_RATE,
    FillKind,
    FillResult,
    Position,
    PositionMode,
    Side,
    TriggerBy,
    apply_fill,
)
from bybit_hybrid.sim.prices import PriceBook

POSITION_LIST_LIMIT_DEFAULT: Final = 20
POSITION_LIST_LIMIT_MAX: Final = 200
INSTRUMENTS_LIMIT_DEFAULT: Final = 500
INSTRUMENTS_LIMIT_MAX: Final = 1000
_FIRST_SEQ: Final = 8_000_000_000


class ExchangeError(Exception):
    """A business error answered as Bybit's envelope with HTTP 200 and this retCode."""

    def __init__(self, ret_code: int, ret_msg: str) -> None:
        super().__init__(f"{ret_code}: {ret_msg}")
        self.ret_code = ret_code
        self.ret_msg = ret_msg


def _params_error(what: str) -> ExchangeError:
    return ExchangeError(10001, f"params error: {what}")


@dataclass(frozen=True, slots=True)
class PrivatePush:
    """One private-stream message to send: topic base name, data rows, creation time."""

    topic: str
    rows: tuple[dict[str, Any], ...]
    creation_ms: int


@dataclass(frozen=True, slots=True)
class StopChange:
    """A validated trading-stop request: new values (None = not sent)."""

    take_profit: Decimal | None
    stop_loss: Decimal | None
    trailing_stop: Decimal | None
    active_price: Decimal | None
    tp_trigger_by: TriggerBy | None
    sl_trigger_by: TriggerBy | None


class Exchange:
    """In-memory Bybit linear market with Bybit's position semantics."""

    def __init__(
        self, symbols: int, seed: int, now_ms: int, *, market: Exchange | None = None, salt: int = 0
    ) -> None:
        """`market`: another account's exchange whose instruments and prices this one shares
        (one market, several accounts); `salt` keeps this account's ids and seqs its own."""
        self.start_ms: int = now_ms if market is None else market.start_ms
        if market is None:
            self.instruments: dict[str, Instrument] = {
                inst.symbol: inst for inst in build_instruments(symbols)
            }
            self.prices = PriceBook(tuple(self.instruments.values()), seed, now_ms)
        else:
            self.instruments, self.prices = market.instruments, market.prices
        self._id_rng = random.Random(seed * 7919 + 1 + salt * 104_729)
        self.modes: dict[str, PositionMode] = {}
        self.positions: dict[tuple[str, int], Position] = {}
        self.symbol_seq: dict[str, int] = {}
        self._last_seq = _FIRST_SEQ + (seed + salt * 7_777) % 1_000_000
        self.history = History()
        self._outbox: list[PrivatePush] = []
        # Set by the server shell while a partial-fill fault applies to one order/create call.
        self.fill_fraction: Decimal | None = None

    # -- lookups ----------------------------------------------------------------------------

    def instrument(self, symbol: object) -> Instrument:
        inst = self.instruments.get(symbol) if isinstance(symbol, str) else None
        if inst is None:
            raise _params_error("symbol invalid")
        return inst

    def mode(self, symbol: str) -> PositionMode:
        return self.modes.get(symbol, PositionMode.ONE_WAY)

    def seq(self, symbol: str) -> int:
        """Seq of the last trade on `symbol`; -1 when it never traded."""
        return self.symbol_seq.get(symbol, -1)

    def slot(self, symbol: str, idx: int, now_ms: int | None = None) -> Position:
        """The position slot, created flat on first use."""
        key = (symbol, idx)
        pos = self.positions.get(key)
        if pos is None:
            created_ms = self.start_ms if now_ms is None else now_ms
            pos = Position(symbol=symbol, idx=idx, created_ms=created_ms, updated_ms=created_ms)
            self.positions[key] = pos
        return pos

    def slots(self, symbol: str) -> list[Position]:
        return [self.slot(symbol, idx) for idx in self.mode(symbol).indexes]

    def open_positions(self) -> list[Position]:
        return sorted((p for p in self.positions.values() if p.is_open), key=lambda p: p.key)

    def trigger_price(self, symbol: str, trigger: TriggerBy) -> Decimal:
        if trigger is TriggerBy.MARK:
            return self.prices.mark(symbol)
        if trigger is TriggerBy.INDEX:
            return self.prices.index(symbol)
        return self.prices.last(symbol)

    def ws_row(self, pos: Position) -> dict[str, Any]:
        inst = self.instruments[pos.symbol]
        mark = self.prices.mark(pos.symbol)
        return fields.ws_position_row(pos, inst, self.seq(pos.symbol), mark)

    def rest_row(self, pos: Position) -> dict[str, Any]:
        inst = self.instruments[pos.symbol]
        mark = self.prices.mark(pos.symbol)
        return fields.rest_position_row(pos, inst, self.seq(pos.symbol), mark)

    def ticker_fields(self, symbol: str) -> dict[str, str]:
        return dict(self.prices.tickers[symbol].fields)

    def drain_pushes(self) -> list[PrivatePush]:
        pushes, self._outbox = self._outbox, []
        return pushes

    def new_id(self) -> str:
        return str(uuid.UUID(int=self._id_rng.getrandbits(128), version=4))

    # -- prices -----------------------------------------------------------------------------

    def step(
        self, now_ms: int, slice_index: int = 0, slices: int = 1
    ) -> dict[str, tuple[str, ...]]:
        """Advances every unpaused ticker (of one slice: see `PriceBook.step`) one tick, then
        fires TP/SL crossed by the new prices."""
        changes = self.prices.step(slice_index, slices)
        if changes:
            self._check_triggers(changes, now_ms)
        return changes

    def set_prices(
        self,
        symbol: str,
        now_ms: int,
        *,
        mark: Decimal | None = None,
        last: Decimal | None = None,
        index: Decimal | None = None,
    ) -> tuple[str, ...]:
        self.instrument(symbol)
        changed = self.prices.set_prices(symbol, mark=mark, last=last, index=index)
        if changed:
            self._check_triggers({symbol: changed}, now_ms)
        return changed

    def set_mark(self, symbol: str, price: Decimal, now_ms: int) -> tuple[str, ...]:
        return self.set_prices(symbol, now_ms, mark=price)

    def check_triggers(self, changes: Mapping[str, tuple[str, ...]], now_ms: int) -> None:
        """Closes this account's positions whose TP/SL the changed prices crossed (another
        account's price step moved the shared market)."""
        self._check_triggers(changes, now_ms)

    def _check_triggers(self, changes: Mapping[str, tuple[str, ...]], now_ms: int) -> None:
        fired: list[tuple[Position, CloseReason]] = []
        for pos in self.positions.values():
            if pos.symbol not in changes or not pos.is_open:
                continue
            reason = self._crossed(pos)
            if reason is not None:
                fired.append((pos, reason))
        for pos, reason in fired:
            self._close(pos, now_ms, reason)

    def _crossed(self, pos: Position) -> CloseReason | None:
        sign = pos.side.sign
        if pos.stop_loss:
            price = self.trigger_price(pos.symbol, pos.sl_trigger_by)
            if (price - pos.stop_loss) * sign <= 0:
                return CloseReason.STOP_LOSS
        if pos.take_profit:
            price = self.trigger_price(pos.symbol, pos.tp_trigger_by)
            if (price - pos.take_profit) * sign >= 0:
                return CloseReason.TAKE_PROFIT
        return None

    # -- orders -----------------------------------------------------------------------------

    def place_order(self, params: Mapping[str, Any], now_ms: int) -> dict[str, str]:
        """`POST /v5/order/create` for Market orders; returns Bybit's result object."""
        if params.get("category") != "linear":
            raise _params_error("category invalid")
        inst = self.instrument(params.get("symbol"))
        side = _parse_side(params.get("side"))
        if params.get("orderType") != "Market":
            raise _params_error("the simulator supports orderType Market only")
        qty = parse_decimal(params.get("qty"))
        if qty is None:
            raise _params_error("qty invalid")
        idx = _parse_idx(params.get("positionIdx", 0))
        reduce_only = params.get("reduceOnly", False)
        if not isinstance(reduce_only, bool):
            raise _params_error("reduceOnly invalid")
        link_id = params.get("orderLinkId", "")
        if not isinstance(link_id, str):
            raise _params_error("orderLinkId invalid")
        _check_qty(inst, qty)
        fill_qty = _partial_qty(inst, qty, self.fill_fraction)
        order_id = self.market_order(
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

    def market_order(
        self,
        symbol: str,
        side: Side,
        qty: Decimal,
        position_idx: int,
        now_ms: int,
        *,
        reduce_only: bool = False,
        order_link_id: str = "",
        source: CloseReason = CloseReason.ORDER,
        check_qty: bool = True,
        ordered_qty: Decimal | None = None,
        open_time_ms: int | None = None,
    ) -> str:
        """Fills a market order at the last price; raises ExchangeError like Bybit would."""
        inst = self.instrument(symbol)
        if check_qty:
            _check_qty(inst, qty)
        pos = self._order_slot(symbol, side, position_idx, now_ms)
        closing = pos.is_open and side is not pos.side
        if position_idx != 0:
            # In hedge mode an order on the slot's opposite side can only reduce that slot.
            reduce_only = reduce_only or side.sign != (1 if position_idx == 1 else -1)
        if reduce_only and not closing:
            raise ExchangeError(
                110017, "current position is zero, cannot fix reduce-only order qty"
            )
        order_id = self.new_id()
        price = self.prices.last(symbol)
        self._last_seq += 1
        self.symbol_seq[symbol] = self._last_seq
        result = apply_fill(pos, side, qty, price, now_ms, reduce_only=reduce_only)
        if open_time_ms is not None and result.kind is FillKind.OPEN:
            pos.open_time_ms = open_time_ms  # a position "opened earlier" (control user only)
        self._record_fill(
            pos, result, side=side, price=price, now_ms=now_ms, source=source, order_id=order_id
        )
        stop_type = {CloseReason.STOP_LOSS: "StopLoss", CloseReason.TAKE_PROFIT: "TakeProfit"}
        self._push_fill(
            fields.OrderFill(
                order_id=order_id,
                order_link_id=order_link_id,
                exec_id=self.new_id(),
                symbol=symbol,
                side=side,
                position_idx=position_idx,
                qty=result.filled_qty,
                price=price,
                closed_qty=result.closed_qty,
                fee=result.filled_qty * price * TAKER_FEE_RATE,
                mark=self.prices.mark(symbol),
                index=self.prices.index(symbol),
                reduce_only=reduce_only,
                stop_order_type=stop_type.get(source, ""),
                seq=self._last_seq,
                now_ms=now_ms,
                ordered_qty=qty if ordered_qty is None else ordered_qty,
            )
        )
        return order_id

    def _order_slot(self, symbol: str, side: Side, idx: int, now_ms: int) -> Position:
        if idx not in self.mode(symbol).indexes:
            raise ExchangeError(10001, "position idx not match position mode")
        if side is Side.NONE:
            raise _params_error("side invalid")
        return self.slot(symbol, idx, now_ms)

    def _record_fill(
        self,
        pos: Position,
        result: FillResult,
        *,
        side: Side,
        price: Decimal,
        now_ms: int,
        source: CloseReason,
        order_id: str,
    ) -> None:
        self.history.record(
            now_ms,
            EventKind.ORDER,
            pos.symbol,
            pos.idx,
            source,
            order_id=order_id,
            side=side.value,
            qty=dec_str(result.filled_qty),
            price=dec_str(price),
            fill=result.kind.value,
            seq=self.seq(pos.symbol),
        )
        if result.kind in (FillKind.CLOSE, FillKind.FLIP):
            self._record_position(EventKind.CLOSE, pos, now_ms, source, closed=result.closed_qty)
        if result.kind in (FillKind.OPEN, FillKind.FLIP):
            self._record_position(EventKind.OPEN, pos, now_ms, None)
        if result.kind in (FillKind.INCREASE, FillKind.REDUCE):
            self._record_position(EventKind.CHANGE, pos, now_ms, None)

    def _record_position(
        self,
        kind: EventKind,
        pos: Position,
        now_ms: int,
        reason: CloseReason | None,
        closed: Decimal = ZERO,
        **extra: Any,
    ) -> None:
        self.history.record(
            now_ms,
            kind,
            pos.symbol,
            pos.idx,
            reason,
            side=pos.side.value,
            size=dec_str(pos.size),
            entry_price=dec_str(pos.avg_price),
            closed_qty=dec_str(closed),
            stop_loss=dec_str(pos.stop_loss),
            take_profit=dec_str(pos.take_profit),
            trailing_stop=dec_str(pos.trailing_stop),
            seq=self.seq(pos.symbol),
            updated_ms=pos.updated_ms,
            open_time_ms=pos.open_time_ms,
            **extra,
        )

    def _push_fill(self, fill: fields.OrderFill) -> None:
        self._outbox.append(PrivatePush("order", (fields.order_row(fill),), fill.now_ms))
        self._outbox.append(PrivatePush("execution", (fields.execution_row(fill),), fill.now_ms))
        self.push_positions(fill.symbol, fill.position_idx, fill.now_ms)

    def push_positions(self, symbol: str, idx: int, now_ms: int) -> None:
        """Queues a `position` push: the slot, or both slots of a hedge-mode symbol."""
        slots = self.slots(symbol) if idx != 0 else [self.slot(symbol, 0)]
        rows = tuple(self.ws_row(pos) for pos in slots)
        self._outbox.append(PrivatePush("position", rows, now_ms))

    def touch(self, symbol: str, now_ms: int) -> None:
        """An order action that changes nothing (e.g. a far limit order placed and cancelled).

        Bybit still pushes the position, so clients must de-duplicate.
        """
        self.instrument(symbol)
        self.push_positions(symbol, self.mode(symbol).indexes[0], now_ms)

    # -- control operations -----------------------------------------------------------------

    def close_position(
        self, symbol: str, idx: int, now_ms: int, reason: CloseReason = CloseReason.CONTROL
    ) -> str:
        self.instrument(symbol)
        pos = self.positions.get((symbol, idx))
        if pos is None or not pos.is_open:
            raise ExchangeError(
                110017, "current position is zero, cannot fix reduce-only order qty"
            )
        return self._close(pos, now_ms, reason)

    def _close(self, pos: Position, now_ms: int, reason: CloseReason) -> str:
        return self.market_order(
            pos.symbol,
            pos.side.opposite(),
            pos.size,
            pos.idx,
            now_ms,
            reduce_only=True,
            source=reason,
            check_qty=False,
        )

    def set_position_mode(self, symbol: str, mode: PositionMode, now_ms: int) -> None:
        self.instrument(symbol)
        if self.mode(symbol) is mode:
            raise ExchangeError(110025, "Position mode is not modified")
        if any(pos.is_open for pos in self.slots(symbol)):
            raise ExchangeError(
                110024, "You have existing positions, so position mode cannot be switched"
            )
        for idx in self.mode(symbol).indexes:
            self.positions.pop((symbol, idx), None)
        self.modes[symbol] = mode
        for idx in mode.indexes:
            self.slot(symbol, idx, now_ms)
        self.history.record(now_ms, EventKind.MODE, symbol, None, mode=mode.value)

    def change_position(
        self,
        symbol: str,
        idx: int,
        now_ms: int,
        *,
        size: Decimal | None = None,
        stop_loss: Decimal | None = None,
        take_profit: Decimal | None = None,
        trailing_stop: Decimal | None = None,
        leverage: Decimal | None = None,
        open_time_ms: int | None = None,
    ) -> None:
        """Control-route edit: a size change trades (new seq); other edits keep seq."""
        inst = self.instrument(symbol)
        pos = self.positions.get((symbol, idx))
        if pos is None or not pos.is_open:
            raise ExchangeError(10001, "can not set tp/sl/ts for zero position")
        for price in (stop_loss, take_profit, trailing_stop):
            if price is not None and price != 0 and not inst.on_tick(price):
                raise _params_error(
                    f"price {price} must be a multiple of tickSize {inst.tick_size}"
                )
        if leverage is not None and leverage <= 0:
            raise _params_error("leverage invalid")
        if size is not None and size != pos.size:
            delta = size - pos.size
            side = pos.side if delta > 0 else pos.side.opposite()
            self.market_order(symbol, side, abs(delta), idx, now_ms, source=CloseReason.CONTROL)
            if not pos.is_open:
                return
        edits = {
            "stop_loss": stop_loss,
            "take_profit": take_profit,
            "trailing_stop": trailing_stop,
            "leverage": leverage,
            "open_time_ms": open_time_ms,
        }
        if all(value is None for value in edits.values()):
            return
        for name, value in edits.items():
            if value is not None:
                setattr(pos, name, value)
        pos.updated_ms = now_ms
        self._record_position(EventKind.CHANGE, pos, now_ms, CloseReason.CONTROL)
        self.push_positions(symbol, idx, now_ms)
        self._check_triggers({symbol: ("control",)}, now_ms)

    # -- trading stop -----------------------------------------------------------------------

    def trading_stop(
        self, params: Mapping[str, Any], now_ms: int, raw_body: str = ""
    ) -> dict[str, Any]:
        """`POST /v5/position/trading-stop`; every request is recorded with its result."""
        try:
            self._trading_stop(params, now_ms)
        except ExchangeError as exc:
            self._record_stop_request(now_ms, params, raw_body, exc)
            raise
        self._record_stop_request(now_ms, params, raw_body, None)
        return {}

    def _record_stop_request(
        self,
        now_ms: int,
        params: Mapping[str, Any],
        raw_body: str,
        error: ExchangeError | None,
    ) -> None:
        symbol = params.get("symbol")
        idx_raw = params.get("positionIdx")
        self.history.record(
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

    def _trading_stop(self, params: Mapping[str, Any], now_ms: int) -> None:
        if params.get("category") != "linear":
            raise _params_error("category invalid")
        inst = self.instrument(params.get("symbol"))
        mode = params.get("tpslMode", "Full")
        if mode not in ("Full", "Partial"):
            raise _params_error("tpslMode invalid")
        if mode == "Partial":
            raise _params_error("the simulator supports tpslMode Full only")
        idx = _parse_idx(params.get("positionIdx", 0))
        if idx not in self.mode(inst.symbol).indexes:
            raise ExchangeError(10001, "position idx not match position mode")
        change = _parse_stop_change(params, inst)
        pos = self.positions.get((inst.symbol, idx))
        if pos is None or not pos.is_open:
            raise ExchangeError(10001, "can not set tp/sl/ts for zero position")
        if not _modifies(pos, change):
            raise ExchangeError(34040, "not modified")
        self._check_stop_sides(pos, change)
        self._apply_stop_change(pos, change, now_ms)

    def _check_stop_sides(self, pos: Position, change: StopChange) -> None:
        side = pos.side.value
        if change.stop_loss and change.stop_loss != pos.stop_loss:
            trigger = change.sl_trigger_by or pos.sl_trigger_by
            base = self.trigger_price(pos.symbol, trigger)
            if (change.stop_loss - base) * pos.side.sign >= 0:
                rel = "lower" if pos.side is Side.BUY else "greater"
                raise ExchangeError(
                    10001,
                    f"StopLoss:{times_1e8(change.stop_loss)} set for {side} position should "
                    f"{rel} than base_price:{times_1e8(base)}??{trigger.value}",
                )
        if change.take_profit and change.take_profit != pos.take_profit:
            trigger = change.tp_trigger_by or pos.tp_trigger_by
            base = self.trigger_price(pos.symbol, trigger)
            if (change.take_profit - base) * pos.side.sign <= 0:
                rel = "greater" if pos.side is Side.BUY else "lower"
                raise ExchangeError(
                    10001,
                    f"TakeProfit:{times_1e8(change.take_profit)} set for {side} position should "
                    f"{rel} than base_price:{times_1e8(base)}??{trigger.value}",
                )

    def _apply_stop_change(self, pos: Position, change: StopChange, now_ms: int) -> None:
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
        self._record_position(EventKind.CHANGE, pos, now_ms, None, cause="trading_stop")
        self.push_positions(pos.symbol, pos.idx, now_ms)

    # -- REST queries -----------------------------------------------------------------------

    def position_list(self, params: Mapping[str, str]) -> dict[str, Any]:
        """`GET /v5/position/list` result object (rows with avgPrice; `%`-escaped cursors)."""
        category = params.get("category", "")
        if category in ("inverse", "option"):
            return {"list": [], "nextPageCursor": "", "category": category}
        if category != "linear":
            raise _params_error("category invalid")
        limit = _parse_limit(
            params.get("limit"), POSITION_LIST_LIMIT_DEFAULT, POSITION_LIST_LIMIT_MAX
        )
        symbol = params.get("symbol", "")
        settle = params.get("settleCoin", "")
        if symbol:
            slots = self.slots(self.instrument(symbol).symbol)
        elif settle:
            slots = [
                p for p in self.open_positions() if self.instruments[p.symbol].settle_coin == settle
            ]
        else:
            raise _params_error("symbol or settleCoin is required")
        slots.sort(key=lambda p: p.key)
        after = _parse_position_cursor(params.get("cursor", ""))
        if after is not None:
            slots = [p for p in slots if p.key > after]
        page = slots[:limit]
        cursor = ""
        if len(slots) > limit:
            last = page[-1]
            cursor = quote(f"{last.symbol}:{last.idx},{last.symbol}:{last.idx}", safe="")
        return {
            "list": [self.rest_row(p) for p in page],
            "nextPageCursor": cursor,
            "category": "linear",
        }

    def tickers(self, params: Mapping[str, str]) -> dict[str, Any]:
        """`GET /v5/market/tickers` result object."""
        if params.get("category") != "linear":
            raise _params_error("category invalid")
        symbol = params.get("symbol")
        if symbol:
            if symbol not in self.instruments:
                raise ExchangeError(10001, "Not supported symbols")
            symbols = [symbol]
        else:
            symbols = list(self.instruments)
        rows = [fields.rest_ticker_row(self.prices.tickers[s].fields) for s in symbols]
        return {"category": "linear", "list": rows}

    def instruments_info(self, params: Mapping[str, str]) -> dict[str, Any]:
        """`GET /v5/market/instruments-info` result object with cursor pagination."""
        if params.get("category") != "linear":
            raise _params_error("category invalid")
        limit = _parse_limit(params.get("limit"), INSTRUMENTS_LIMIT_DEFAULT, INSTRUMENTS_LIMIT_MAX)
        insts = list(self.instruments.values())
        if params.get("symbol"):
            insts = [i for i in insts if i.symbol == params["symbol"]]
        if params.get("status", "Trading") != "Trading":
            insts = []
        after = _parse_instrument_cursor(params.get("cursor", ""))
        if after is not None:
            names = [i.symbol for i in insts]
            if after not in names:
                raise _params_error("cursor invalid")
            insts = insts[names.index(after) + 1 :]
        page = insts[:limit]
        cursor = ""
        if len(insts) > limit:
            cursor = quote(f"first={page[0].symbol}&last={page[-1].symbol}", safe="")
        return {
            "category": "linear",
            "list": [fields.instrument_row(i, self.start_ms) for i in page],
            "nextPageCursor": cursor,
        }

    def state(self) -> dict[str, Any]:
        """A JSON-ready view for `/sim/state` and debugging."""
        return {
            "positions": [self.ws_row(p) for p in self.open_positions()],
            "modes": {s: m.value for s, m in self.modes.items()},
            "seq": dict(self.symbol_seq),
            "marks": {s: dec_str(self.prices.mark(s)) for s in self.instruments},
            "history_len": len(self.history),
        }


# -- parameter parsing ------------------------------------------------------------------------


def _parse_side(raw: object) -> Side:
    if raw == "Buy":
        return Side.BUY
    if raw == "Sell":
        return Side.SELL
    raise _params_error("side invalid")


def _parse_idx(raw: object) -> int:
    if isinstance(raw, bool):
        raise _params_error("positionIdx invalid")
    if isinstance(raw, str) and raw.isdigit():
        raw = int(raw)
    if not isinstance(raw, int) or raw not in (0, 1, 2):
        raise _params_error("positionIdx invalid")
    return raw


def _parse_limit(raw: str | None, default: int, maximum: int) -> int:
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= maximum:
        raise _params_error(f"limit must be between 1 and {maximum}")
    return int(raw)


def _parse_position_cursor(raw: str) -> tuple[str, int] | None:
    """Cursor `SYM:idx,SYM:idx` (already %-decoded once; decodes again if a client re-escaped)."""
    if not raw:
        return None
    if "%" in raw:
        raw = unquote(raw)
    head = raw.split(",", 1)[0]
    symbol, _, idx = head.partition(":")
    if not symbol or not idx.isdigit():
        raise _params_error("cursor invalid")
    return (symbol, int(idx))


def _parse_instrument_cursor(raw: str) -> str | None:
    if not raw:
        return None
    if "%" in raw:
        raw = unquote(raw)
    for part in raw.split("&"):
        name, _, value = part.partition("=")
        if name == "last" and value:
            return value
    raise _params_error("cursor invalid")


def _partial_qty(inst: Instrument, qty: Decimal, fraction: Decimal | None) -> Decimal:
    """The qty a partial-fill fault lets through: `fraction` of it rounded down to qtyStep, at
    least one step; the whole qty when it cannot be split."""
    if fraction is None:
        return qty
    part = (qty * fraction / inst.qty_step).to_integral_value(ROUND_FLOOR) * inst.qty_step
    part = max(part, inst.qty_step)
    return part if part < qty else qty


def _check_qty(inst: Instrument, qty: Decimal) -> None:
    if qty <= 0 or qty % inst.qty_step != 0:
        raise ExchangeError(10001, f"Qty invalid: must be a multiple of qtyStep {inst.qty_step}")
    if qty < inst.min_order_qty:
        raise ExchangeError(10001, "The number of contracts exceeds minimum limit allowed")
    if qty > inst.max_order_qty:
        raise ExchangeError(
            10001, "The number of contracts exceeds maximum limit allowed: too large"
        )


def _parse_price(params: Mapping[str, Any], name: str, inst: Instrument) -> Decimal | None:
    if name not in params:
        return None
    value = parse_decimal(params[name])
    if value is None or value < 0:
        raise _params_error(f"{name} invalid")
    if value != 0 and name != "trailingStop" and not inst.on_tick(value):
        raise _params_error(f"{name} must be a multiple of tickSize {inst.tick_size}")
    return value


def _parse_trigger(params: Mapping[str, Any], name: str) -> TriggerBy | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    try:
        return TriggerBy(raw)
    except ValueError:
        raise _params_error(f"{name} invalid") from None


def _parse_stop_change(params: Mapping[str, Any], inst: Instrument) -> StopChange:
    return StopChange(
        take_profit=_parse_price(params, "takeProfit", inst),
        stop_loss=_parse_price(params, "stopLoss", inst),
        trailing_stop=_parse_price(params, "trailingStop", inst),
        active_price=_parse_price(params, "activePrice", inst),
        tp_trigger_by=_parse_trigger(params, "tpTriggerBy"),
        sl_trigger_by=_parse_trigger(params, "slTriggerBy"),
    )


def _modifies(pos: Position, change: StopChange) -> bool:
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
