"""Decimal <-> Bybit wire-string conversions used by every sim field table."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Final

_PNL_QUANTUM: Final = Decimal("0.00000001")
ZERO: Final = Decimal(0)


def dec_str(value: Decimal) -> str:
    """Plain decimal text without exponent or trailing zeros: Decimal('65000.50') -> '65000.5'."""
    if value == 0:
        return "0"
    text = format(value.normalize(), "f")
    return text


def amount_str(value: Decimal) -> str:
    """Money amounts (PnL, margin) rounded to 8 places, then printed plainly."""
    return dec_str(value.quantize(_PNL_QUANTUM))


def scaled_str(value: Decimal, scale: int) -> str:
    """A price printed with exactly `scale` decimals, as Bybit prints ticker prices."""
    return f"{value:.{scale}f}"


def parse_decimal(raw: object) -> Decimal | None:
    """Parses a JSON string or number into a finite Decimal; None when it is not one."""
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        return None
    try:
        value = Decimal(str(raw))
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


def times_1e8(value: Decimal) -> int:
    """Bybit's error texts print prices scaled by 1e8 as integers."""
    return int(value * 100_000_000)
