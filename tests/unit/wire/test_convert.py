"""The wire → domain converter: "" means none, "0" unsets TP/SL, bad numbers name the field."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bybit_hybrid.wire.convert import (
    decimal_or_none,
    instrument_from_wire,
    int_or_none,
    position_from_ws,
    price_unset_zero,
    side_or_none,
)
from bybit_hybrid.wire.errors import WireDecodeError
from bybit_hybrid.wire.messages import InstrumentInfo, LotSizeFilter, PriceFilter, WsPosition


def test_empty_string_means_none() -> None:
    assert decimal_or_none("", "f") is None
    assert decimal_or_none(None, "f") is None
    assert decimal_or_none("0.010", "f") == Decimal("0.010")


@pytest.mark.parametrize("value", ["", "0", "0.00"])
def test_zero_means_unset_for_stops(value: str) -> None:
    assert price_unset_zero(value, "stopLoss") is None


@pytest.mark.parametrize("value", ["abc", "NaN", "Infinity", "1e", "1E999999", "-1e31", "1e-31"])
def test_bad_decimal_names_field(value: str) -> None:
    with pytest.raises(WireDecodeError) as info:
        decimal_or_none(value, "markPrice")
    assert info.value.path == "markPrice"
    assert "markPrice" in str(info.value)


@pytest.mark.parametrize("value", ["1e30", "-9.99e30", "1e-30", "0E-1000", "0.00000001"])
def test_decimals_up_to_thirty_powers_of_ten_are_accepted(value: str) -> None:
    assert decimal_or_none(value, "markPrice") == Decimal(value)


def test_side_and_seq() -> None:
    assert side_or_none("") is None
    with pytest.raises(WireDecodeError, match="side is not Buy, Sell or empty"):
        side_or_none("Long")
    assert int_or_none("-1", "seq") == -1
    assert int_or_none(-1, "seq") == -1
    assert int_or_none("", "createdTime") is None
    with pytest.raises(WireDecodeError, match="seq is not an integer"):
        int_or_none("x", "seq")


def test_flat_row_with_stale_side_is_flat() -> None:
    row = WsPosition(symbol="X", positionIdx=0, side="Buy", size="0")
    snap = position_from_ws(row, None)
    assert snap.side is None and not snap.is_open


def test_negative_size_is_refused() -> None:
    with pytest.raises(WireDecodeError, match="size is negative"):
        position_from_ws(WsPosition(symbol="X", positionIdx=0, side="Buy", size="-1"), None)


def test_instrument() -> None:
    info = InstrumentInfo(
        symbol="BTCUSDT",
        priceFilter=PriceFilter(tickSize="0.10"),
        lotSizeFilter=LotSizeFilter(qtyStep="0.001", minOrderQty="0.001"),
        status="Trading",
        settleCoin="USDT",
    )
    inst = instrument_from_wire(info)
    assert (inst.tick_size, inst.qty_step, inst.min_order_qty) == (
        Decimal("0.10"),
        Decimal("0.001"),
        Decimal("0.001"),
    )
    bad = InstrumentInfo(
        symbol="X", priceFilter=PriceFilter(tickSize="0"), lotSizeFilter=LotSizeFilter(qtyStep="1")
    )
    with pytest.raises(WireDecodeError, match="tickSize and qtyStep must be positive"):
        instrument_from_wire(bad)
