"""Unified position events (open, change, close, mark) and the DESIGN §4 contract dict."""

from __future__ import annotations

from decimal import Decimal
from typing import ClassVar, Literal

import msgspec

from bybit_hybrid.protocol.domain import PositionKey, Side, Source

Lifecycle = Literal["open", "closed"]

_ZERO = Decimal(0)


def unrealised_pnl(
    side: Side | None, entry_price: Decimal | None, mark_price: Decimal | None, size: Decimal
) -> Decimal | None:
    """`sign * (mark - entry) * size`; None when side, entry or mark is unknown."""
    if size == _ZERO:
        return _ZERO  # a closed position holds nothing, whatever is (or is not) known
    if side is None or entry_price is None or mark_price is None:
        return None
    pnl = side.sign * (mark_price - entry_price) * size
    # A short at break-even gives Decimal("-0"): render it as plain zero.
    return pnl if pnl else abs(pnl)


class PositionView(msgspec.Struct, frozen=True, gc=False):
    """One position as consumers see it: the latest push merged with the live mark.

    For a close, `size` is 0, `status` is "closed", and `side`/`entry_price` keep their last
    known values so a consumer can still tell which trade ended.

    A frozen msgspec Struct rather than a dataclass: a mark change (the product's most frequent
    event) copies one with `msgspec.structs.replace`, which runs in C at about a seventh of the
    cost of a frozen dataclass's per-field `object.__setattr__`. Its fields hold no cycles, so it
    is kept out of the garbage collector (`gc=False`).
    """

    key: PositionKey
    side: Side | None
    size: Decimal
    entry_price: Decimal | None
    mark_price: Decimal | None
    unrealised_pnl: Decimal | None
    leverage: Decimal | None
    position_status: str
    stop_loss: Decimal | None
    take_profit: Decimal | None
    trailing_stop: Decimal | None
    liq_price: Decimal | None
    open_time_ms: int | None
    status: Lifecycle
    source: Source
    exchange_ts_ms: int | None
    cs: int | None
    seq: int | None
    received_at: float

    @property
    def is_open(self) -> bool:
        return self.status == "open"


_replace = msgspec.structs.replace


def revalue(
    view: PositionView,
    mark: Decimal,
    source: Source,
    exchange_ts_ms: int | None,
    cs: int | None,
    *,
    received_at: float,
) -> PositionView:
    """A copy of `view` at a new mark, PnL recomputed."""
    side, entry, size = view.side, view.entry_price, view.size
    pnl: Decimal | None
    if side is not None and entry is not None and size:
        # `unrealised_pnl` inline (a mark change is the hottest event): (entry - mark) for a
        # short is the exact negation of (mark - entry), with the same exponent, and a
        # difference of equal values is +0, so no Decimal("-0") can come out.
        pnl = (mark - entry) * size if side is Side.BUY else (entry - mark) * size
    else:
        pnl = unrealised_pnl(side, entry, mark, size)
    return _replace(
        view,
        mark_price=mark,
        unrealised_pnl=pnl,
        source=source,
        exchange_ts_ms=exchange_ts_ms,
        cs=cs,
        received_at=received_at,
    )


class _ViewEvent:
    """What every position event shares: a view, and the key it is about.

    The events are frozen msgspec Structs (C constructors: a `MarkUpdated` is built per mark
    change, at a quarter of a frozen dataclass's cost); they hold no cycles (`gc=False`).
    """

    __slots__ = ()
    view: PositionView

    @property
    def key(self) -> PositionKey:
        return self.view.key


class PositionOpened(msgspec.Struct, _ViewEvent, frozen=True, gc=False):
    """A position appeared: flat or unknown → size > 0 (or the new side of a flip)."""

    kind: ClassVar[str] = "opened"
    view: PositionView


class PositionChanged(msgspec.Struct, _ViewEvent, frozen=True, gc=False):
    """An open position changed; `changed` names the PositionView fields that differ."""

    kind: ClassVar[str] = "changed"
    view: PositionView
    changed: frozenset[str]


class PositionClosed(msgspec.Struct, _ViewEvent, frozen=True, gc=False):
    """A position went flat (or its old side ended in a flip); the view has size 0."""

    kind: ClassVar[str] = "closed"
    view: PositionView


class MarkUpdated(msgspec.Struct, _ViewEvent, frozen=True, gc=False):
    """An open position revalued at a new mark price; nothing else about it changed."""

    kind: ClassVar[str] = "mark"
    view: PositionView


PositionEvent = PositionOpened | PositionChanged | PositionClosed | MarkUpdated


def to_contract(view: PositionView) -> dict[str, object]:
    """The `data` dict of a DESIGN §4 `position_update`; Decimals stay Decimal."""
    return {
        "symbol": view.key.symbol,
        "position_idx": view.key.idx,
        # `_value_`, not `.value`: Enum.value is a Python property, and this runs per event.
        "side": view.side._value_ if view.side is not None else None,
        "size": view.size,
        "entry_price": view.entry_price,
        "mark_price": view.mark_price,
        "unrealized_pnl": view.unrealised_pnl,
        "leverage": view.leverage,
        "position_status": view.position_status,
        "stop_loss": view.stop_loss,
        "take_profit": view.take_profit,
        "source": view.source._value_,
        "exchange_ts": view.exchange_ts_ms,
        "cs": view.cs,
        "seq": view.seq,
        "status": view.status,
    }


def status_row(view: PositionView, mark_age_s: float | None) -> dict[str, object]:
    """One position as the streams' `get_status()["positions"]` show it (JSON-ready)."""
    return {
        "symbol": view.key.symbol,
        "position_idx": view.key.idx,
        "side": view.side.value if view.side else None,
        "size": str(view.size),
        "mark_price": None if view.mark_price is None else str(view.mark_price),
        "mark_age_s": None if mark_age_s is None else round(mark_age_s, 3),
    }
