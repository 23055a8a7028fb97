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


def sent(s: core.TrailState, d: core.Decision, now_s: float) -> core.TrailState:
    """The exchange accepted the stop the decision asked for."""
    assert isinstance(d, MoveStop), d
    return core.confirmed(s, d.stop_price, now_s)


def test_worked_example_long() -> None:
    """docs/protection.md: a BTC long from 60 000.00, tick 0.10."""
    s = core.new_trail(Side.BUY, Decimal("60000"), Decimal("0.10"), Decimal("60000"))
    s, d = core.on_mark(s, P, Decimal("61199.90"), 0.0)
    assert d == Hold(HoldReason.NOT_ACTIVE)  # 61 200 activates, 61 199.90 does not
    s, d = core.on_mark(s, P, Decimal("61200.00"), 1.0)
    assert d == MoveStop(Decimal("60894.00"), None, None, False)  # 61 200 x 0.995
    s = sent(s, d, 1.0)
    s, d = core.on_mark(s, P, Decimal("61230.00"), 2.0)
    assert d == Hold(HoldReason.TOO_SMALL)  # 60 923.85 -> 60 923.80: +0.049 %
    s, d = core.on_mark(s, P, Decimal("61300.00"), 3.0)
    assert d == Hold(HoldReason.TOO_SOON)  # 60 993.50: +0.16 %, but 2 s after the last send
    s, d = core.on_mark(s, P, Decimal("61250.00"), 31.0)
    assert isinstance(d, MoveStop) and d.stop_price == Decimal("60993.50")  # the peak is remembered
    s = sent(s, d, 31.0)
    s, d = core.on_mark(s, P, Decimal("62000.00"), 32.0)
    assert isinstance(d, MoveStop) and d.bypassed  # 61 690: +1.14 % >= 1 % bypasses the 30 s
    assert d.stop_price == Decimal("61690.00")
    s = sent(s, d, 32.0)
    s, d = core.on_mark(s, P, Decimal("61800.00"), 100.0)
    assert d == Hold(HoldReason.NOT_TIGHTER)
    assert s.stop_price == Decimal("61690.00") and s.extreme_price == Decimal("62000.00")
    s, d = core.on_mark(s, P, Decimal("61690.00"), 101.0)  # at the stop: it triggers
    assert d == CloseNow(Decimal("61690.00"), Decimal("61690.00"))


def test_an_unconfirmed_stop_is_asked_for_again_newest_value_only() -> None:
    s = core.new_trail(Side.BUY, Decimal("60000"), Decimal("0.10"), Decimal("60000"))
    s, d = core.on_mark(s, P, Decimal("61200.00"), 1.0)
    assert d == MoveStop(Decimal("60894.00"), None, None, False)
    s, d = core.on_mark(s, P, Decimal("61200.00"), 2.0)  # no reply confirmed it: again
    assert d == MoveStop(Decimal("60894.00"), None, None, False)
    s, d = core.on_mark(s, P, Decimal("61300.00"), 3.0)  # superseded by a tighter one
    assert isinstance(d, MoveStop) and d.stop_price == Decimal("60993.50")
    assert s.confirmed_stop is None and s.unconfirmed


def test_short_rounds_up_and_trails_down() -> None:
    s = core.new_trail(Side.SELL, Decimal("3200"), Decimal("0.01"), Decimal("3200"))
    s, d = core.on_mark(s, P, Decimal("3136.00"), 0.0)  # 3200 x 0.98
    assert d == MoveStop(Decimal("3151.68"), None, None, False)  # 3136 x 1.005 = 3151.68
    s = sent(s, d, 0.0)
    s, d = core.on_mark(s, P, Decimal("3119.99"), 100.0)
    # 3119.99 x 1.005 = 3135.58995: rounded UP to 3135.59 (away from the mark, the safe side).
    assert isinstance(d, MoveStop) and d.stop_price == Decimal("3135.59")


def test_long_rounds_down() -> None:
    s = core.new_trail(Side.BUY, Decimal("100"), Decimal("0.5"), Decimal("100"))
    s, d = core.on_mark(s, P, Decimal("102.5"), 0.0)  # 102.5 x 0.995 = 101.9875 -> 101.5
    assert d == MoveStop(Decimal("101.5"), None, None, False)


def test_breakeven_covers_both_fees_and_rounds_toward_profit() -> None:
    params = TrailingParams(breakeven_trigger_pct=Decimal("1"))  # taker 0.055 % per side
    s = core.new_trail(Side.BUY, Decimal("100.03"), Decimal("0.1"), Decimal("100"))
    s, d = core.on_mark(s, params, Decimal("101.1"), 0.0)
    assert s.phase is TrailPhase.BREAKEVEN
    # 100.03 x 1.0011 = 100.140033: up to 100.2, never down to a loss (100.0 or 100.1)
    assert d == MoveStop(Decimal("100.2"), None, None, False)
    assert not s.is_active
    s = sent(s, d, 0.0)
    s, d = core.on_mark(s, params, Decimal("102.1"), 1.0)
    assert s.phase is TrailPhase.TRAILING and isinstance(d, MoveStop)
    assert d.stop_price == Decimal("101.5") and d.bypassed


def test_breakeven_of_a_short_rounds_down() -> None:
    params = TrailingParams(breakeven_trigger_pct=Decimal("1"), fee_pct_per_side=Decimal("0.1"))
    s = core.new_trail(Side.SELL, Decimal("100.07"), Decimal("0.1"), Decimal("100"))
    s, d = core.on_mark(s, params, Decimal("99"), 0.0)
    # 100.07 x 0.998 = 99.86986: down to 99.8, below the entry less the fees
    assert d == MoveStop(Decimal("99.8"), None, None, False)


def test_a_crossed_stop_becomes_a_close() -> None:
    s = core.new_trail(Side.BUY, Decimal("100"), Decimal("0.01"), Decimal("100"))
    s, d = core.on_mark(s, P, Decimal("102"), 0.0)  # stop 101.49
    s = sent(s, d, 0.0)
    s, d = core.on_mark(s, P, Decimal("102.8"), 1.0)  # wants 102.28 (+0.78 %): too soon
    assert d == Hold(HoldReason.TOO_SOON)
    s, d = core.on_mark(s, P, Decimal("101.4"), 2.0)  # through the confirmed 101.49
    assert d == CloseNow(Decimal("101.49"), Decimal("101.4"))
    s, d = core.on_mark(s, P, Decimal("101.3"), 3.0)
    assert isinstance(d, CloseNow), "asked again on every decision until the position is gone"


def test_the_crossed_check_uses_the_trigger_price() -> None:
    s = core.new_trail(Side.BUY, Decimal("100"), Decimal("0.01"), Decimal("100"))
    s, d = core.on_mark(s, P, Decimal("102"), 0.0)
    s = sent(s, d, 0.0)
    s, d = core.on_mark(s, P, Decimal("102"), 1.0, trigger_price=Decimal("101.49"))
    assert d == CloseNow(Decimal("101.49"), Decimal("101.49"))


def test_exchange_stops_tighter_are_adopted_looser_are_overridden() -> None:
    s = core.new_trail(
        Side.BUY, Decimal("100"), Decimal("0.01"), Decimal("100"), exchange_stop=Decimal("95")
    )
    assert (s.stop_price, s.confirmed_stop, s.unconfirmed) == (Decimal("95"), Decimal("95"), False)
    s = core.seen_on_exchange(s, Decimal("97"))  # tightened by hand: taken as wanted too
    assert (s.wanted_stop, s.confirmed_stop) == (Decimal("97"), Decimal("97"))
    s, d = core.on_mark(s, P, Decimal("102"), 0.0)
    assert isinstance(d, MoveStop) and d.previous_stop == Decimal("97")
    s = sent(s, d, 0.0)
    s = core.seen_on_exchange(s, Decimal("101.9"))  # tighter than our 101.49: taken
    s, d = core.on_mark(s, P, Decimal("102.3"), 100.0)  # wants 101.78: looser than 101.9
    assert d == Hold(HoldReason.NOT_TIGHTER)
    s = core.seen_on_exchange(s, Decimal("99"))  # loosened by hand: ours is sent again
    s, d = core.on_mark(s, P, Decimal("102.3"), 101.0)
    assert isinstance(d, MoveStop) and d.bypassed
    assert (d.stop_price, d.previous_stop) == (Decimal("101.9"), Decimal("99"))


def test_a_wrong_side_price_is_never_asked_for_again() -> None:
    s = core.new_trail(Side.BUY, Decimal("100"), Decimal("0.01"), Decimal("100"))
    s, d = core.on_mark(s, P, Decimal("102"), 0.0)
    assert isinstance(d, MoveStop)
    s = core.rejected(s, d.stop_price)
    s, d = core.on_mark(s, P, Decimal("102"), 1.0)
    assert d == Hold(HoldReason.REJECTED)
    s, d = core.on_mark(s, P, Decimal("102"), 2.0, trigger_price=Decimal("101.4"))
    assert d == CloseNow(Decimal("101.49"), Decimal("101.4"))


def test_a_restored_trail_is_unconfirmed_until_the_exchange_shows_it() -> None:
    s = core.new_trail(Side.BUY, Decimal("100"), Decimal("0.01"), Decimal("100"))
    s, d = core.on_mark(s, P, Decimal("102"), 0.0)
    s = core.restored(sent(s, d, 0.0))
    assert s.unconfirmed and s.last_sent_at_s is None
    s, d = core.on_mark(s, P, Decimal("102"), 0.0)
    assert d == MoveStop(Decimal("101.49"), None, None, False)
    assert not core.seen_on_exchange(s, Decimal("101.49")).unconfirmed


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
        {"bypass_improvement_pct": Decimal(0)},
        {"min_improvement_pct": Decimal("0.5"), "bypass_improvement_pct": Decimal("0.2")},
        {"fee_pct_per_side": Decimal(-1)},
    ],
)
def test_bad_params_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        TrailingParams(**kwargs)  # type: ignore[arg-type]


def test_worked_example_variant_crossed_at_31_s() -> None:
    """docs/protection.md: a mark of 60 990.00 at t = 31 closes instead of sending 60 993.50."""
    s = core.new_trail(Side.BUY, Decimal("60000"), Decimal("0.10"), Decimal("60000"))
    s, d = core.on_mark(s, P, Decimal("61200.00"), 1.0)
    s = sent(s, d, 1.0)
    s, _ = core.on_mark(s, P, Decimal("61300.00"), 3.0)
    s, d = core.on_mark(s, P, Decimal("60990.00"), 31.0)
    assert d == CloseNow(Decimal("60993.50"), Decimal("60990.00"))
