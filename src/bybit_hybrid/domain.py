"""Domain values shared by every layer: position keys, sides, sources, converted snapshots.

This module is a leaf: it imports nothing from the project (only msgspec), so both
`wire.convert` (which builds these values from Bybit's messages) and the protocol core can
use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import Enum, StrEnum

import msgspec


class Side(StrEnum):
    """A position's direction as Bybit spells it."""

    BUY = "Buy"
    SELL = "Sell"

    @property
    def sign(self) -> int:
        """+1 for a long, -1 for a short: PnL = sign * (mark - entry) * size."""
        return 1 if self is Side.BUY else -1


class Source(StrEnum):
    """Which feed caused an event (DESIGN §4 `source`)."""

    TICKER = "ticker"
    POSITION = "position"
    REST = "rest"


class Socket(Enum):
    """The two Bybit WebSockets bybit-hybrid keeps open."""

    PUBLIC = "public"
    PRIVATE = "private"


class PositionKey(msgspec.Struct, frozen=True, order=True, gc=False):
    """A position's identity: hedge mode has two per symbol (idx 1 Buy side, 2 Sell side).

    A Struct so that hashing and comparing it (every dict lookup in the book) runs in C.
    """

    symbol: str
    idx: int

    def __str__(self) -> str:
        return f"{self.symbol}/{self.idx}"


@dataclass(frozen=True, slots=True)
class PositionSnapshot:
    """One position row from the private stream or REST, converted to domain values.

    `side` is None and `size` is 0 when flat. Prices that Bybit marks unset with "" or "0"
    (stop loss, take profit, trailing stop, liquidation) are None.
    """

    key: PositionKey
    side: Side | None
    size: Decimal
    entry_price: Decimal | None
    mark_price: Decimal | None
    leverage: Decimal | None
    unrealised_pnl: Decimal | None
    cum_realised_pnl: Decimal | None
    stop_loss: Decimal | None
    take_profit: Decimal | None
    trailing_stop: Decimal | None
    liq_price: Decimal | None
    position_status: str
    seq: int | None
    created_time_ms: int | None
    updated_time_ms: int | None
    open_time_ms: int | None
    source: Source
    exchange_ts_ms: int | None

    @property
    def is_open(self) -> bool:
        return self.size > 0 and self.side is not None


@dataclass(frozen=True, slots=True)
class TickerUpdate:
    """One ticker frame's prices; a None field is unchanged (deltas carry only changes)."""

    symbol: str
    is_snapshot: bool
    mark_price: Decimal | None
    last_price: Decimal | None
    index_price: Decimal | None
    cs: int | None
    ts_ms: int


@dataclass(frozen=True, slots=True)
class Instrument:
    """Trading rules for one symbol, from instruments-info."""

    symbol: str
    settle_coin: str
    tick_size: Decimal
    qty_step: Decimal
    min_order_qty: Decimal
    status: str
