"""Position slots keyed by (symbol, positionIdx) and the fill arithmetic of linear contracts."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from typing import Final

from bybit_hybrid.sim.numbers import ZERO

TAKER_FEE_RATE: Final = Decimal("0.00055")
MAINTENANCE_MARGIN_RATE: Final = Decimal("0.005")
DEFAULT_LEVERAGE: Final = Decimal("10")
_AVG_QUANTUM: Final = Decimal("0.00000001")


class Side(Enum):
    """Position or order side; NONE is Bybit's "" for a flat position."""

    NONE = ""
    BUY = "Buy"
    SELL = "Sell"

    @property
    def sign(self) -> int:
        return {Side.BUY: 1, Side.SELL: -1, Side.NONE: 0}[self]

    def opposite(self) -> Side:
        return {Side.BUY: Side.SELL, Side.SELL: Side.BUY, Side.NONE: Side.NONE}[self]


class PositionMode(Enum):
    """Per-symbol position mode: one slot (idx 0) or one per side (idx 1 Buy, 2 Sell)."""

    ONE_WAY = "one_way"
    HEDGE = "hedge"

    @property
    def indexes(self) -> tuple[int, ...]:
        return (0,) if self is PositionMode.ONE_WAY else (1, 2)


class TriggerBy(Enum):
    """Which price a TP/SL watches."""

    LAST = "LastPrice"
    MARK = "MarkPrice"
    INDEX = "IndexPrice"


class PositionStatus(Enum):
    NORMAL = "Normal"
    LIQ = "Liq"
    ADL = "Adl"


class FillKind(Enum):
    """What a fill did to a position slot."""

    OPEN = "open"
    INCREASE = "increase"
    REDUCE = "reduce"
    CLOSE = "close"
    FLIP = "flip"


@dataclass(slots=True)
class Position:
    """Mutable state of one (symbol, positionIdx) slot; seq lives on the exchange per symbol."""

    symbol: str
    idx: int
    created_ms: int
    updated_ms: int
    side: Side = Side.NONE
    size: Decimal = ZERO
    avg_price: Decimal = ZERO
    leverage: Decimal = DEFAULT_LEVERAGE
    take_profit: Decimal = ZERO
    stop_loss: Decimal = ZERO
    trailing_stop: Decimal = ZERO
    active_price: Decimal = ZERO
    tp_trigger_by: TriggerBy = TriggerBy.LAST
    sl_trigger_by: TriggerBy = TriggerBy.LAST
    cur_realised_pnl: Decimal = ZERO
    cum_realised_pnl: Decimal = ZERO
    open_time_ms: int = 0
    status: PositionStatus = PositionStatus.NORMAL

    @property
    def is_open(self) -> bool:
        return self.size > 0

    @property
    def key(self) -> tuple[str, int]:
        return (self.symbol, self.idx)

    def clear_stops(self) -> None:
        self.take_profit = ZERO
        self.stop_loss = ZERO
        self.trailing_stop = ZERO
        self.active_price = ZERO

    def unrealised_pnl(self, mark: Decimal) -> Decimal:
        return (mark - self.avg_price) * self.size * self.side.sign


@dataclass(frozen=True, slots=True)
class FillResult:
    kind: FillKind
    filled_qty: Decimal
    closed_qty: Decimal
    realised_pnl: Decimal


def _fee(qty: Decimal, price: Decimal) -> Decimal:
    return qty * price * TAKER_FEE_RATE


def apply_fill(
    pos: Position, side: Side, qty: Decimal, price: Decimal, now_ms: int, *, reduce_only: bool
) -> FillResult:
    """Applies a market fill of `qty` on `side` at `price`; reduce-only never opens or flips."""
    pos.updated_ms = now_ms
    if not pos.is_open:
        _open(pos, side, qty, price, now_ms)
        return FillResult(FillKind.OPEN, qty, ZERO, -_fee(qty, price))
    if side is pos.side:
        fee = _fee(qty, price)
        total = pos.size + qty
        pos.avg_price = ((pos.avg_price * pos.size + price * qty) / total).quantize(_AVG_QUANTUM)
        pos.size = total
        pos.cur_realised_pnl -= fee
        pos.cum_realised_pnl -= fee
        return FillResult(FillKind.INCREASE, qty, ZERO, -fee)
    closed = min(qty, pos.size)
    realised = (price - pos.avg_price) * closed * pos.side.sign - _fee(closed, price)
    pos.cur_realised_pnl += realised
    pos.cum_realised_pnl += realised
    pos.size -= closed
    if pos.size > 0:
        return FillResult(FillKind.REDUCE, closed, closed, realised)
    _flatten(pos)
    remainder = qty - closed
    if remainder <= 0 or reduce_only:
        return FillResult(FillKind.CLOSE, closed, closed, realised)
    _open(pos, side, remainder, price, now_ms)
    return FillResult(FillKind.FLIP, qty, closed, realised - _fee(remainder, price))


def _open(pos: Position, side: Side, qty: Decimal, price: Decimal, now_ms: int) -> None:
    fee = _fee(qty, price)
    pos.side = side
    pos.size = qty
    pos.avg_price = price
    pos.open_time_ms = now_ms
    # curRealisedPnl belongs to the current holding, so it restarts at the opening fee.
    pos.cur_realised_pnl = -fee
    pos.cum_realised_pnl -= fee
    pos.status = PositionStatus.NORMAL


def _flatten(pos: Position) -> None:
    pos.side = Side.NONE
    pos.size = ZERO
    pos.avg_price = ZERO
    pos.open_time_ms = 0
    # Bybit cancels the position's TP/SL orders when it closes.
    pos.clear_stops()


def liq_price(pos: Position) -> Decimal:
    """Isolated-margin estimate: entry moved against the side by 1/leverage minus MMR."""
    if not pos.is_open:
        return ZERO
    move = 1 / pos.leverage - MAINTENANCE_MARGIN_RATE
    return max(ZERO, pos.avg_price * (1 - pos.side.sign * move))


def break_even_price(pos: Position) -> Decimal:
    """Price at which closing pays back the open and close taker fees."""
    if not pos.is_open:
        return ZERO
    if pos.side is Side.BUY:
        return pos.avg_price * (1 + TAKER_FEE_RATE) / (1 - TAKER_FEE_RATE)
    return pos.avg_price * (1 - TAKER_FEE_RATE) / (1 + TAKER_FEE_RATE)
