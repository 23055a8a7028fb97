"""PnL from the live mark, event classes, and the DESIGN §4 contract dict."""

from __future__ import annotations

from decimal import Decimal

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bybit_hybrid.protocol.domain import PositionKey, Side, Source
from bybit_hybrid.protocol.events import (
    MarkUpdated,
    PositionChanged,
    PositionClosed,
    PositionEvent,
    PositionOpened,
    PositionView,
    to_contract,
    unrealised_pnl,
)
from tests.support import CONTRACT_KEYS


def _view(**overrides: object) -> PositionView:
    base = PositionView(
        key=PositionKey("ETHUSDT", 2),
        side=Side.SELL,
        size=Decimal("0.2"),
        entry_price=Decimal("3250"),
        mark_price=Decimal("3210.15"),
        unrealised_pnl=Decimal("7.970"),
        leverage=Decimal("5"),
        position_status="Normal",
        stop_loss=Decimal("3330"),
        take_profit=None,
        trailing_stop=None,
        liq_price=None,
        open_time_ms=1762199000000,
        status="open",
        source=Source.TICKER,
        exchange_ts_ms=1762200000500,
        cs=42,
        seq=140612148849400,
        received_at=1762200000.6,
    )
    return msgspec.structs.replace(base, **overrides)


@pytest.mark.parametrize(
    ("side", "entry", "mark", "size", "expected"),
    [
        (Side.BUY, "65000", "65120.5", "0.01", "1.205"),
        (Side.BUY, "65000", "64000", "0.01", "-10.00"),
        (Side.SELL, "3250", "3210.15", "0.2", "7.970"),
        (Side.SELL, "3250", "3300", "0.2", "-10.0"),
    ],
    ids=["long-up", "long-down", "short-down", "short-up"],
)
def test_pnl_long_and_short(side: Side, entry: str, mark: str, size: str, expected: str) -> None:
    pnl = unrealised_pnl(side, Decimal(entry), Decimal(mark), Decimal(size))
    assert pnl == Decimal(expected)


def test_pnl_is_unknown_without_mark_or_entry_and_zero_when_flat() -> None:
    assert unrealised_pnl(Side.BUY, None, Decimal(1), Decimal(1)) is None
    assert unrealised_pnl(Side.BUY, Decimal(1), None, Decimal(1)) is None
    assert unrealised_pnl(None, None, None, Decimal(0)) == 0


def test_short_at_break_even_is_not_negative_zero() -> None:
    pnl = unrealised_pnl(Side.SELL, Decimal("100.0"), Decimal("100.0"), Decimal("2"))
    assert pnl is not None
    assert str(pnl) == "0.0"


def test_contract_has_exactly_the_design_keys_and_values() -> None:
    data = to_contract(_view())
    assert set(data) == CONTRACT_KEYS
    assert data == {
        "symbol": "ETHUSDT",
        "position_idx": 2,
        "side": "Sell",
        "size": Decimal("0.2"),
        "entry_price": Decimal("3250"),
        "mark_price": Decimal("3210.15"),
        "unrealized_pnl": Decimal("7.970"),
        "leverage": Decimal("5"),
        "position_status": "Normal",
        "stop_loss": Decimal("3330"),
        "take_profit": None,
        "source": "ticker",
        "exchange_ts": 1762200000500,
        "cs": 42,
        "seq": 140612148849400,
        "status": "open",
    }
    assert all(type(data[k]) is str for k in ("side", "source", "status"))


def test_contract_for_a_close_keeps_side_and_entry() -> None:
    closed = _view(
        size=Decimal(0), unrealised_pnl=Decimal(0), status="closed", source=Source.POSITION
    )
    data = to_contract(closed)
    assert (data["size"], data["status"], data["side"]) == (Decimal(0), "closed", "Sell")
    assert data["entry_price"] == Decimal("3250")
    assert data["source"] == "position"


def test_events_are_frozen_and_expose_their_key() -> None:
    view = _view()
    events: list[PositionEvent] = [
        PositionOpened(view),
        PositionChanged(view, frozenset({"size"})),
        PositionClosed(view),
        MarkUpdated(view),
    ]
    assert [e.kind for e in events] == ["opened", "changed", "closed", "mark"]
    assert all(e.key == PositionKey("ETHUSDT", 2) for e in events)
    with pytest.raises(AttributeError):
        view.size = Decimal(1)  # type: ignore[misc]


def test_revalue_changes_only_the_valuation_fields() -> None:
    """`revalue` copies a view at a new mark: PnL, source, exchange ts, cs and receipt time
    follow the mark; every other field is the base's."""
    from bybit_hybrid.protocol.events import revalue  # noqa: PLC0415

    base = _view()
    mark = Decimal("66000.5")
    fast = revalue(base, mark, Source.REST, 123, 7, received_at=9.5)
    valuation = {
        "mark_price": mark,
        "unrealised_pnl": unrealised_pnl(base.side, base.entry_price, mark, base.size),
        "source": Source.REST,
        "exchange_ts_ms": 123,
        "cs": 7,
        "received_at": 9.5,
    }
    fields = PositionView.__struct_fields__
    expected = PositionView(**{name: valuation.get(name, getattr(base, name)) for name in fields})
    assert fast == expected
    assert base.mark_price != mark  # the base view is untouched
    with pytest.raises(AttributeError):
        fast.mark_price = mark  # type: ignore[misc]


@settings(max_examples=400, deadline=None)
@given(
    side=st.sampled_from([Side.BUY, Side.SELL, None]),
    entry=st.none() | st.decimals("0.0001", "100000", places=4),
    mark=st.decimals("0.0001", "100000", places=4),
    size=st.decimals("0", "1000", places=3),
)
def test_revalue_pnl_is_unrealised_pnl_digit_for_digit(
    side: Side | None, entry: Decimal | None, mark: Decimal, size: Decimal
) -> None:
    """`revalue` inlines the PnL formula; it must give the same Decimal, exponent and sign
    included (str() is what consumers see)."""
    from bybit_hybrid.protocol.events import revalue  # noqa: PLC0415

    view = _view(side=side, entry_price=entry, size=size)
    got = revalue(view, mark, Source.TICKER, 1, 1, received_at=1.0).unrealised_pnl
    want = unrealised_pnl(side, entry, mark, size)
    assert str(got) == str(want)
