"""Decimal price helpers for protection: tick rounding in a chosen direction and percent moves."""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Final

from bybit_hybrid.protocol.domain import Side

HUNDRED: Final = Decimal(100)


def floor_to_tick(price: Decimal, tick_size: Decimal) -> Decimal:
    """The largest multiple of `tick_size` that is <= `price`."""
    return (price / tick_size).to_integral_value(rounding=ROUND_FLOOR) * tick_size


def ceil_to_tick(price: Decimal, tick_size: Decimal) -> Decimal:
    """The smallest multiple of `tick_size` that is >= `price`."""
    return (price / tick_size).to_integral_value(rounding=ROUND_CEILING) * tick_size


def safe_stop_on_tick(side: Side, price: Decimal, tick_size: Decimal) -> Decimal:
    """A stop on the tick grid, rounded away from the mark: down for a long, up for a short.

    Rounding toward the mark could put a stop that was computed just beyond the price on the
    wrong side of it; rounding away only ever gives the position a fraction of a tick more room.
    """
    if side is Side.BUY:
        return floor_to_tick(price, tick_size)
    return ceil_to_tick(price, tick_size)


def profit_side_on_tick(side: Side, price: Decimal, tick_size: Decimal) -> Decimal:
    """A price on the tick grid rounded in the position's favour: up for a long, down for a short.

    For a break-even stop: rounding the other way would lock in a fraction of a tick of loss.
    """
    if side is Side.BUY:
        return ceil_to_tick(price, tick_size)
    return floor_to_tick(price, tick_size)


def moved_by_pct(side: Side, price: Decimal, pct: Decimal) -> Decimal:
    """`price` moved `pct` percent in the position's favour (up for a long, down for a short)."""
    return price * (1 + side.sign * pct / HUNDRED)


def is_tighter(side: Side, stop: Decimal, than: Decimal | None) -> bool:
    """True when `stop` protects more than `than` (higher for a long, lower for a short)."""
    if than is None:
        return True
    return (stop - than) * side.sign > 0


def has_crossed(side: Side, mark: Decimal, stop: Decimal) -> bool:
    """True when the mark is at or beyond the stop, so the exchange would refuse it."""
    return (mark - stop) * side.sign <= 0


def price_text(price: Decimal) -> str:
    """Plain decimal text for the wire (never exponent notation)."""
    return format(price, "f")
