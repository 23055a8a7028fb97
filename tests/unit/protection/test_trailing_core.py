"""Trailing core, by example: the worked example of docs/protection.md and the edge rules."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bybit_hybrid.protection import trailing as core
from bybit_hybrid.protection.trailing import (
    CloseNow,
    Hold,
    HoldReason,
    IllegalTransitionError,
    MoveStop,
    TrailingParams,
    TrailPhase,
)
from bybit_hybrid.protocol.domain import Side

P = TrailingParams()  # 2 % activation, 0.5 % callback, 30 s, 0.05 %, bypass 1 %


def test_worked_example_long() -> None:
    """docs/protection.md: a BTC long from 60 000.00, tick 0.10."""
    s = core.new_trail(Side.BUY, Decimal("60000"), Decimal("0.10"), Decimal("60000"))
    s, d = core.on_mark(s, P, Decimal("61199.90"), 0.0)
    assert d == Hold(HoldReason.NOT_ACTIVE)  # 61 200 activates, 61 199.90 does not
    s, d = core.on_mark(s, P, Decimal("61200.00"), 1.0)
    assert d == MoveStop(Decimal("60894.00"), None, None, False)  # 61 200 x 0.995
    s, d = core.on_mark(s, P, Decimal("61230.00"), 2.0)
    assert d == Hold(HoldReason.TOO_SMALL)  # 60 923.85 -> 60 923.80: +0.049 %
    s, d = core.on_mark(s, P, Decimal("61300.00"), 3.0)
    assert d == Hold(HoldReason.TOO_SOON)  # 60 993.50: +0.16 %, but 2 s after the last send
    s, d = core.on_mark(s, P, Decimal("61250.00"), 31.0)
    assert isinstance(d, MoveStop) and d.stop_price == Decimal("60993.50")  # the peak is remembered
    s, d = core.on_mark(s, P, Decimal("62000.00"), 32.0)
    assert isinstance(d, MoveStop) and d.bypassed  # 61 690: +1.14 % >= 1 % bypasses the 30 s
    assert d.stop_price == Decimal("61690.00")
    s, d = core.on_mark(s, P, Decimal("61500.00"), 100.0)
    assert d == Hold(HoldReason.NOT_TIGHTER)
    assert s.stop_price == Decimal("61690.00") and s.extreme_price == Decimal("62000.00")


def test_short_rounds_up_and_trails_down() -> None:
    s = core.new_trail(Side.SELL, Decimal("3200"), Decimal("0.01"), Decimal("3200"))
    s, d = core.on_mark(s, P, Decimal("3136.00"), 0.0)  # 3200 x 0.98
    assert d == MoveStop(Decimal("3151.68"), None, None, False)  # 3136 x 1.005 = 3151.68
    s, d = core.on_mark(s, P, Decimal("3119.99"), 100.0)
    # 3119.99 x 1.005 = 3135.58995: rounded UP to 3135.59 (away from the mark, the safe side).
    assert isinstance(d, MoveStop) and d.stop_price == Decimal("3135.59")


def test_long_rounds_down() -> None:
    s = core.new_trail(Side.BUY, Decimal("100"), Decimal("0.5"), Decimal("100"))
    s, d = core.on_mark(s, P, Decimal("102.5"), 0.0)  # 102.5 x 0.995 = 101.9875 -> 101.5
    assert d == MoveStop(Decimal("101.5"), None, None, False)


def test_breakeven_then_trailing() -> None:
    params = TrailingParams(breakeven_trigger_pct=Decimal("1"))
    s = core.new_trail(Side.BUY, Decimal("100.03"), Decimal("0.1"), Decimal("100"))
    s, d = core.on_mark(s, params, Decimal("101.1"), 0.0)
    assert s.phase is TrailPhase.BREAKEVEN
    assert d == MoveStop(Decimal("100.0"), None, None, False)  # entry rounded down to the tick
    assert not s.is_active
    s, d = core.on_mark(s, params, Decimal("102.1"), 1.0)
    assert s.phase is TrailPhase.TRAILING and isinstance(d, MoveStop)
    assert d.stop_price == Decimal("101.5") and d.bypassed


def test_a_crossed_stop_becomes_a_close() -> None:
    s = core.new_trail(Side.BUY, Decimal("100"), Decimal("0.01"), Decimal("100"))
    s, _ = core.on_mark(s, P, Decimal("102"), 0.0)  # stop 101.49
    s, d = core.on_mark(s, P, Decimal("102.8"), 1.0)  # wants 102.28 (+0.78 %): too soon
    assert d == Hold(HoldReason.TOO_SOON)
    s, d = core.on_mark(s, P, Decimal("102.2"), 40.0)  # the mark is below the wanted 102.28
    assert d == CloseNow(Decimal("102.28"), Decimal("102.2"))
    assert s.stop_price == Decimal("101.49"), "a close does not pretend the stop was moved"


def test_tighter_hand_set_stop_is_adopted_looser_is_ignored() -> None:
    s = core.new_trail(
        Side.BUY, Decimal("100"), Decimal("0.01"), Decimal("100"), exchange_stop=Decimal("95")
    )
    assert s.stop_price == Decimal("95")
    s = core.adopt_exchange_stop(s, Decimal("97"))
    assert s.stop_price == Decimal("97")
    assert core.adopt_exchange_stop(s, Decimal("96")).stop_price == Decimal("97")
    s, d = core.on_mark(s, P, Decimal("102"), 0.0)
    assert isinstance(d, MoveStop) and d.previous_stop == Decimal("97")
    s = core.adopt_exchange_stop(
        s, Decimal("101.9")
    )  # tighter than our 101.49: taken, not overwritten
    s, d = core.on_mark(s, P, Decimal("102.3"), 100.0)  # wants 101.78: looser than 101.9
    assert d == Hold(HoldReason.NOT_TIGHTER)


def test_phases_never_go_back() -> None:
    s = core.new_trail(Side.BUY, Decimal("100"), Decimal("0.01"), Decimal("100"))
    s = core.transition(s, TrailPhase.TRAILING)
    with pytest.raises(IllegalTransitionError):
        core.transition(s, TrailPhase.WATCHING)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"activation_pct": Decimal(0)},
        {"callback_pct": Decimal(100)},
        {"breakeven_trigger_pct": Decimal(-1)},
        {"min_update_interval_s": -1.0},
    ],
)
def test_bad_params_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        TrailingParams(**kwargs)  # type: ignore[arg-type]


def test_worked_example_variant_crossed_at_31_s() -> None:
    """docs/protection.md: a mark of 60 990.00 at t = 31 closes instead of sending 60 993.50."""
    s = core.new_trail(Side.BUY, Decimal("60000"), Decimal("0.10"), Decimal("60000"))
    s, _ = core.on_mark(s, P, Decimal("61200.00"), 1.0)
    s, _ = core.on_mark(s, P, Decimal("61300.00"), 3.0)
    s, d = core.on_mark(s, P, Decimal("60990.00"), 31.0)
    assert d == CloseNow(Decimal("60993.50"), Decimal("60990.00"))
