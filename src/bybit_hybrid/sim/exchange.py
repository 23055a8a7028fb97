"""The pure simulated exchange of one account: positions, orders, TP/SL and REST queries.

No asyncio and no clock reads: every operation takes `now_ms` from the caller. Private-stream
pushes are queued in an outbox that the server drains after each operation.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

from bybit_hybrid.sim import fields, orders, queries, stops
from bybit_hybrid.sim.history import CloseReason, EventKind, History
from bybit_hybrid.sim.instruments import Instrument, build_instruments
from bybit_hybrid.sim.numbers import ZERO, dec_str
from bybit_hybrid.sim.params import (
    ExchangeError,
    check_order_qty,
    params_error,
)
from bybit_hybrid.sim.positions import (
    FillKind,
    FillResult,
    Position,
    PositionMode,
    Side,
    TriggerBy,
    apply_fill,
)
from bybit_hybrid.sim.prices import PriceBook

__all__ = ["Exchange", "ExchangeError", "PrivatePush"]

_FIRST_SEQ: Final = 8_000_000_000


@dataclass(frozen=True, slots=True)
class PrivatePush:
    """One private-stream message to send: topic base name, data rows, creation time."""

    topic: str
    rows: tuple[dict[str, Any], ...]
    creation_ms: int


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
            raise params_error("symbol invalid")
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
        """`POST /v5/order/create` for Market orders (sim/orders.py)."""
        return orders.place_order(self, params, now_ms)

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
            check_order_qty(inst, qty)
        pos = self._order_slot(symbol, side, position_idx, now_ms)
        reduce_only = orders.reduces_only(pos, side, reduce_only=reduce_only)
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
        order = (order_id, order_link_id, reduce_only, qty if ordered_qty is None else ordered_qty)
        fill = orders.order_fill(
            self, pos, result, side=side, price=price, now_ms=now_ms, source=source, order=order
        )
        self._push_fill(fill)
        return order_id

    def _order_slot(self, symbol: str, side: Side, idx: int, now_ms: int) -> Position:
        if idx not in self.mode(symbol).indexes:
            raise ExchangeError(10001, "position idx not match position mode")
        if side is Side.NONE:
            raise params_error("side invalid")
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
            self.record_position(EventKind.CLOSE, pos, now_ms, source, closed=result.closed_qty)
        if result.kind in (FillKind.OPEN, FillKind.FLIP):
            self.record_position(EventKind.OPEN, pos, now_ms, None)
        if result.kind in (FillKind.INCREASE, FillKind.REDUCE):
            self.record_position(EventKind.CHANGE, pos, now_ms, None)

    def record_position(
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
        _check_edits(inst, (stop_loss, take_profit, trailing_stop), leverage)
        if size is not None and size != pos.size:
            self._resize(pos, size, now_ms)
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
        self.record_position(EventKind.CHANGE, pos, now_ms, CloseReason.CONTROL)
        self.push_positions(symbol, idx, now_ms)
        self._check_triggers({symbol: ("control",)}, now_ms)

    def _resize(self, pos: Position, size: Decimal, now_ms: int) -> None:
        """A control edit's size change: the control user trades the difference."""
        delta = size - pos.size
        side = pos.side if delta > 0 else pos.side.opposite()
        self.market_order(pos.symbol, side, abs(delta), pos.idx, now_ms, source=CloseReason.CONTROL)

    # -- trading stop (sim/stops.py) and REST queries (sim/queries.py) ----------------------

    def trading_stop(
        self, params: Mapping[str, Any], now_ms: int, raw_body: str = ""
    ) -> dict[str, Any]:
        """`POST /v5/position/trading-stop`; every request is recorded with its result."""
        return stops.trading_stop(self, params, now_ms, raw_body)

    def position_list(self, params: Mapping[str, str]) -> dict[str, Any]:
        """`GET /v5/position/list` result object (rows with avgPrice; `%`-escaped cursors)."""
        return queries.position_list(self, params)

    def tickers(self, params: Mapping[str, str]) -> dict[str, Any]:
        """`GET /v5/market/tickers` result object."""
        return queries.tickers(self, params)

    def instruments_info(self, params: Mapping[str, str]) -> dict[str, Any]:
        """`GET /v5/market/instruments-info` result object with cursor pagination."""
        return queries.instruments_info(self, params)

    def state(self) -> dict[str, Any]:
        """A JSON-ready view for `/sim/state` and debugging."""
        return {
            "positions": [self.ws_row(p) for p in self.open_positions()],
            "modes": {s: m.value for s, m in self.modes.items()},
            "seq": dict(self.symbol_seq),
            "marks": {s: dec_str(self.prices.mark(s)) for s in self.instruments},
            "history_len": len(self.history),
        }


def _check_edits(
    inst: Instrument, prices: tuple[Decimal | None, ...], leverage: Decimal | None
) -> None:
    """A control edit's prices on the tick grid (0: none) and a positive leverage."""
    for price in prices:
        if price is not None and price != 0 and not inst.on_tick(price):
            raise params_error(f"price {price} must be a multiple of tickSize {inst.tick_size}")
    if leverage is not None and leverage <= 0:
        raise params_error("leverage invalid")
