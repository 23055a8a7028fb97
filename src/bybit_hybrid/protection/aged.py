"""Aged-position decision core: phases by age, the exit target per phase, close decisions. Pure.

A position older than `max_age` with no active trailing stop enters GRACE, whose target is
break-even plus the round-trip fees. After `grace` it enters PROGRESSIVE: the accepted loss
grows by `step` percent per hour, capped at `max_loss`. The target for a long is
entry·(1 + (2·fee − loss)/100) (a short mirrors it), so the two phases join without a jump.
Times are integer milliseconds passed in; prices are Decimal.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Final

from bybit_hybrid.protection.prices import HUNDRED
from bybit_hybrid.protocol.domain import Side
from bybit_hybrid.protocol.errors import check_edge

MS_PER_HOUR: Final = 3_600_000


class AgedPhase(StrEnum):
    YOUNG = "young"  # not old enough yet
    TRAILING = "trailing"  # a trailing stop is active: it owns the exit
    GRACE = "grace"  # target: break-even plus fees
    PROGRESSIVE = "progressive"  # target: accepted loss growing per hour
    CLOSING = "closing"  # a close is in flight, repeated until the exchange shows it flat
    CLOSED = "closed"  # the exchange shows it flat; waiting for the stream's close


# YOUNG may jump straight to PROGRESSIVE: a restart can find a position already past grace.
# CLOSED re-arms by age when the position shows up open again (a size change, a reconcile).
TRANSITIONS: Final[dict[AgedPhase, frozenset[AgedPhase]]] = {
    AgedPhase.YOUNG: frozenset(
        {AgedPhase.TRAILING, AgedPhase.GRACE, AgedPhase.PROGRESSIVE, AgedPhase.CLOSED}
    ),
    AgedPhase.TRAILING: frozenset({AgedPhase.CLOSED}),
    AgedPhase.GRACE: frozenset(
        {AgedPhase.TRAILING, AgedPhase.PROGRESSIVE, AgedPhase.CLOSING, AgedPhase.CLOSED}
    ),
    AgedPhase.PROGRESSIVE: frozenset({AgedPhase.TRAILING, AgedPhase.CLOSING, AgedPhase.CLOSED}),
    AgedPhase.CLOSING: frozenset({AgedPhase.GRACE, AgedPhase.PROGRESSIVE, AgedPhase.CLOSED}),
    AgedPhase.CLOSED: frozenset({AgedPhase.YOUNG, AgedPhase.GRACE, AgedPhase.PROGRESSIVE}),
}
_BY_AGE: Final = (AgedPhase.YOUNG, AgedPhase.GRACE, AgedPhase.PROGRESSIVE)


@dataclass(frozen=True, slots=True)
class AgedParams:
    max_age_ms: int = 3 * MS_PER_HOUR
    grace_ms: int = 1 * MS_PER_HOUR
    fee_pct_per_side: Decimal = Decimal("0.05")
    step_pct_per_h: Decimal = Decimal("0.5")
    max_loss_pct: Decimal = Decimal("10")

    def __post_init__(self) -> None:
        if self.max_age_ms <= 0 or self.grace_ms < 0:
            raise ValueError("max_age_ms must be > 0 and grace_ms >= 0")
        if min(self.fee_pct_per_side, self.step_pct_per_h, self.max_loss_pct) < 0:
            raise ValueError("aged percentages must be >= 0")


@dataclass(frozen=True, slots=True)
class AgedState:
    side: Side
    entry_price: Decimal
    opened_at_ms: int
    phase: AgedPhase = AgedPhase.YOUNG


@dataclass(frozen=True, slots=True)
class AgedHold:
    phase: AgedPhase
    target_price: Decimal | None


@dataclass(frozen=True, slots=True)
class AgedClose:
    """Close at market: the mark reached the phase's target."""

    phase: AgedPhase
    target_price: Decimal
    mark_price: Decimal
    accepted_loss_pct: Decimal


AgedDecision = AgedHold | AgedClose


def transition(state: AgedState, phase: AgedPhase) -> AgedState:
    """Moves to `phase` along the transition table; staying put is allowed."""
    if check_edge(TRANSITIONS, state.phase, phase) is state.phase:
        return state
    return dataclasses.replace(state, phase=phase)


def phase_for_age(params: AgedParams, age_ms: int) -> AgedPhase:
    if age_ms < params.max_age_ms:
        return AgedPhase.YOUNG
    if age_ms < params.max_age_ms + params.grace_ms:
        return AgedPhase.GRACE
    return AgedPhase.PROGRESSIVE


def accepted_loss_pct(params: AgedParams, age_ms: int) -> Decimal:
    """Loss accepted at this age: 0 until grace ends, then step per hour up to the cap."""
    over_ms = age_ms - params.max_age_ms - params.grace_ms
    if over_ms <= 0:
        return Decimal(0)
    grown = params.step_pct_per_h * Decimal(over_ms) / MS_PER_HOUR
    return min(grown, params.max_loss_pct)


def target_price(params: AgedParams, side: Side, entry_price: Decimal, age_ms: int) -> Decimal:
    """The exit price at this age: break-even plus round-trip fees, minus the accepted loss."""
    margin_pct = 2 * params.fee_pct_per_side - accepted_loss_pct(params, age_ms)
    return entry_price * (1 + side.sign * margin_pct / HUNDRED)


def on_mark(
    state: AgedState, params: AgedParams, mark_price: Decimal, now_ms: int, trailing_active: bool
) -> tuple[AgedState, AgedDecision]:
    """One mark in: the state (phase by age) and whether to close now."""
    if state.phase in (AgedPhase.TRAILING, AgedPhase.CLOSING, AgedPhase.CLOSED):
        return state, AgedHold(state.phase, None)
    if trailing_active:
        return transition(state, AgedPhase.TRAILING), AgedHold(AgedPhase.TRAILING, None)
    age_ms = now_ms - state.opened_at_ms
    state = _age_into(state, phase_for_age(params, age_ms))
    if state.phase is AgedPhase.YOUNG:
        return state, AgedHold(state.phase, None)
    target = target_price(params, state.side, state.entry_price, age_ms)
    if (mark_price - target) * state.side.sign < 0:
        return state, AgedHold(state.phase, target)
    loss = accepted_loss_pct(params, age_ms)
    decision = AgedClose(state.phase, target, mark_price, loss)
    return transition(state, AgedPhase.CLOSING), decision


def close_failed(state: AgedState, params: AgedParams, now_ms: int) -> AgedState:
    """Back from CLOSING to the phase the age gives, so a later mark can try again."""
    if state.phase is not AgedPhase.CLOSING:
        return state
    phase = phase_for_age(params, now_ms - state.opened_at_ms)
    return transition(state, AgedPhase.GRACE if phase is AgedPhase.YOUNG else phase)


def resumed(state: AgedState, params: AgedParams, now_ms: int) -> AgedState:
    """A stored state after a restart: a close that was in flight is decided afresh."""
    return close_failed(state, params, now_ms)


def closed(state: AgedState) -> AgedState:
    return transition(state, AgedPhase.CLOSED)


def rearm(state: AgedState, params: AgedParams, now_ms: int) -> AgedState:
    """A position believed flat is open after all: its phase comes from its age again."""
    if state.phase is not AgedPhase.CLOSED:
        return state
    return transition(state, phase_for_age(params, now_ms - state.opened_at_ms))


def rebase_entry(state: AgedState, entry_price: Decimal) -> AgedState:
    """An add (or partial close) moved the average entry: targets follow the new one."""
    return dataclasses.replace(state, entry_price=entry_price)


def with_open_time(state: AgedState, opened_at_ms: int) -> AgedState:
    """The exchange's openTime arrived (or changed): the age counts from it."""
    return dataclasses.replace(state, opened_at_ms=opened_at_ms)


def _age_into(state: AgedState, by_age: AgedPhase) -> AgedState:
    """Phases by age only move forward; a clock step back keeps the later phase."""
    if _BY_AGE.index(by_age) <= _BY_AGE.index(state.phase):
        return state
    return transition(state, by_age)
