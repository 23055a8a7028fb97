"""Aged core, by example: phases by age, targets per phase, monitor of a trail, failed closes."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bybit_hybrid.protection import aged as core
from bybit_hybrid.protection.aged import AgedClose, AgedHold, AgedParams, AgedPhase, AgedState
from bybit_hybrid.protection.trailing import IllegalTransitionError
from bybit_hybrid.protocol.domain import Side

H = 3_600_000
P = AgedParams()  # 3 h, 1 h grace, 0.05 %/side, 0.5 %/h, cap 10 %
T0 = 1_700_000_000_000


def test_worked_example_long() -> None:
    """docs/protection.md: a long from 100.00."""
    s = AgedState(Side.BUY, Decimal("100"), T0)
    s, d = core.on_mark(s, P, Decimal("99"), T0 + 2 * H, trailing_active=False)
    assert d == AgedHold(AgedPhase.YOUNG, None)
    s, d = core.on_mark(s, P, Decimal("100.09"), T0 + 3 * H, trailing_active=False)
    assert d == AgedHold(AgedPhase.GRACE, Decimal("100.10"))  # break-even + 2 x 0.05 %
    s, d = core.on_mark(s, P, Decimal("99.0"), T0 + 6 * H, trailing_active=False)
    # 2 h into progressive: loss 1 %, target 100 x (1 + 0.1 % - 1 %) = 99.10
    assert d == AgedHold(AgedPhase.PROGRESSIVE, Decimal("99.100"))
    s, d = core.on_mark(s, P, Decimal("99.1"), T0 + 6 * H, trailing_active=False)
    assert isinstance(d, AgedClose) and d.accepted_loss_pct == Decimal(1)
    assert s.phase is AgedPhase.CLOSING


def test_loss_is_capped() -> None:
    assert core.accepted_loss_pct(P, 4 * H + 100 * H) == Decimal(10)
    assert core.target_price(P, Side.SELL, Decimal("100"), 200 * H) == Decimal("109.900")


def test_an_active_trail_owns_the_exit() -> None:
    s = AgedState(Side.SELL, Decimal("100"), T0)
    s, d = core.on_mark(s, P, Decimal("50"), T0 + 5 * H, trailing_active=True)
    assert s.phase is AgedPhase.TRAILING and isinstance(d, AgedHold)
    s, d = core.on_mark(s, P, Decimal("50"), T0 + 5 * H, trailing_active=False)
    assert isinstance(d, AgedHold)


def test_failed_close_goes_back_to_the_phase_of_its_age() -> None:
    s = AgedState(Side.BUY, Decimal("100"), T0, AgedPhase.CLOSING)
    assert core.close_failed(s, P, T0 + 3 * H + 1).phase is AgedPhase.GRACE
    assert core.resumed(s, P, T0 + 5 * H).phase is AgedPhase.PROGRESSIVE
    assert core.closed(s).phase is AgedPhase.CLOSED
    with pytest.raises(IllegalTransitionError):
        core.transition(core.closed(s), AgedPhase.CLOSING)
    assert core.rearm(core.closed(s), P, T0 + 3 * H + 1).phase is AgedPhase.GRACE


def test_a_restart_may_find_a_position_past_grace() -> None:
    s = AgedState(Side.BUY, Decimal("100"), T0)
    s, _ = core.on_mark(s, P, Decimal("90"), T0 + 10 * H, trailing_active=False)
    assert s.phase is AgedPhase.PROGRESSIVE
