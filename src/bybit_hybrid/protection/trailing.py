"""Trailing-stop decision core: extreme tracking, activation, tick-safe stops, update rules. Pure.

No asyncio and no clock: every call takes the mark and `now_s`, and returns the new state with
one decision. The adapter (`trailing_adapter.py`) executes decisions and reports outcomes back.

Rules, per position (long shown; a short mirrors every comparison):
- the peak is the highest mark since the trail was created;
- BREAKEVEN (optional): once the mark reaches entry·(1 + breakeven%), the stop goes to entry;
- TRAILING: once the mark reaches entry·(1 + activation%), the stop is peak·(1 − callback%),
  rounded down to the tick (a short rounds up);
- the stop only ever tightens; a first stop is sent at once; later moves need both the minimum
  interval since the last send and the minimum improvement, unless the improvement reaches
  the bypass percentage;
- a stop the mark has already crossed is not sent: the decision is to close at market.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Final

from bybit_hybrid.protection.prices import (
    HUNDRED,
    has_crossed,
    is_tighter,
    moved_by_pct,
    safe_stop_on_tick,
)
from bybit_hybrid.protocol.domain import Side


class TrailPhase(StrEnum):
    """How far a trail has come; it never goes back."""

    WATCHING = "watching"  # tracking the extreme, no stop of ours
    BREAKEVEN = "breakeven"  # stop at entry, not trailing yet
    TRAILING = "trailing"  # activated: the stop follows the extreme


TRANSITIONS: Final[dict[TrailPhase, frozenset[TrailPhase]]] = {
    TrailPhase.WATCHING: frozenset({TrailPhase.BREAKEVEN, TrailPhase.TRAILING}),
    TrailPhase.BREAKEVEN: frozenset({TrailPhase.TRAILING}),
    TrailPhase.TRAILING: frozenset(),
}


class IllegalTransitionError(RuntimeError):
    """A state machine was asked to move along an edge its transition table does not have."""


@dataclass(frozen=True, slots=True)
class TrailingParams:
    """One symbol's trailing settings; percentages are plain percent (2.0 = 2 %)."""

    activation_pct: Decimal = Decimal("2.0")
    callback_pct: Decimal = Decimal("0.5")
    breakeven_trigger_pct: Decimal | None = None
    min_update_interval_s: float = 30.0
    min_improvement_pct: Decimal = Decimal("0.05")
    bypass_improvement_pct: Decimal = Decimal("1.0")

    def __post_init__(self) -> None:
        if not 0 < self.activation_pct <= HUNDRED:
            raise ValueError(f"activation_pct must be in (0, 100], got {self.activation_pct}")
        if not 0 < self.callback_pct < HUNDRED:
            raise ValueError(f"callback_pct must be in (0, 100), got {self.callback_pct}")
        be = self.breakeven_trigger_pct
        if be is not None and not 0 < be <= HUNDRED:
            raise ValueError(f"breakeven_trigger_pct must be in (0, 100], got {be}")
        if self.min_update_interval_s < 0:
            raise ValueError("min_update_interval_s must be >= 0")
        if self.min_improvement_pct < 0 or self.bypass_improvement_pct < 0:
            raise ValueError("improvement percentages must be >= 0")


@dataclass(frozen=True, slots=True)
class TrailState:
    """Everything a trail needs to resume after a restart (this is what the store persists).

    `stop_price` is the stop on the exchange as far as the trail knows: the last one it sent,
    or a tighter one it adopted from the position stream.
    """

    side: Side
    entry_price: Decimal
    tick_size: Decimal
    extreme_price: Decimal  # peak for a long, trough for a short
    phase: TrailPhase = TrailPhase.WATCHING
    stop_price: Decimal | None = None
    last_sent_at_s: float | None = None

    @property
    def is_active(self) -> bool:
        """True once the trail activated (breakeven alone does not count)."""
        return self.phase is TrailPhase.TRAILING


class HoldReason(StrEnum):
    NOT_ACTIVE = "not_active"
    NOT_TIGHTER = "not_tighter"
    TOO_SMALL = "too_small"
    TOO_SOON = "too_soon"


@dataclass(frozen=True, slots=True)
class Hold:
    """Nothing to send."""

    reason: HoldReason


@dataclass(frozen=True, slots=True)
class MoveStop:
    """Send `stop_price` to the exchange; `improvement_pct` is None for a first stop."""

    stop_price: Decimal
    previous_stop: Decimal | None
    improvement_pct: Decimal | None
    bypassed: bool


@dataclass(frozen=True, slots=True)
class CloseNow:
    """The wanted stop is already crossed by the mark: close at market instead of sending it."""

    stop_price: Decimal
    mark_price: Decimal


Decision = Hold | MoveStop | CloseNow


def new_trail(
    side: Side,
    entry_price: Decimal,
    tick_size: Decimal,
    mark_price: Decimal | None,
    exchange_stop: Decimal | None = None,
) -> TrailState:
    """A trail created now; the extreme starts at the mark (the entry when no mark is known)."""
    if tick_size <= 0:
        raise ValueError(f"tick_size must be > 0, got {tick_size}")
    start = mark_price if mark_price is not None else entry_price
    state = TrailState(side, entry_price, tick_size, start)
    return adopt_exchange_stop(state, exchange_stop)


def transition(state: TrailState, phase: TrailPhase) -> TrailState:
    """Moves to `phase` along the transition table; staying put is allowed."""
    if phase is state.phase:
        return state
    if phase not in TRANSITIONS[state.phase]:
        raise IllegalTransitionError(f"trail {state.phase} -> {phase}")
    return dataclasses.replace(state, phase=phase)


def adopt_exchange_stop(state: TrailState, exchange_stop: Decimal | None) -> TrailState:
    """Takes a stop seen on the exchange (set by hand) when it is tighter than ours.

    A looser one is left alone: overwriting it would be a send the rules did not ask for,
    and the next tightening starts from our own stop anyway, so nothing loosens.
    """
    if exchange_stop is None or not is_tighter(state.side, exchange_stop, state.stop_price):
        return state
    return dataclasses.replace(state, stop_price=exchange_stop)


def rebase_entry(state: TrailState, entry_price: Decimal) -> TrailState:
    """A position added to or partly closed: new thresholds, same extreme and stop."""
    return dataclasses.replace(state, entry_price=entry_price)


def on_mark(
    state: TrailState, params: TrailingParams, mark_price: Decimal, now_s: float
) -> tuple[TrailState, Decision]:
    """One mark in: the updated state and what to do. A MoveStop is committed in the state."""
    state = _track_extreme(state, mark_price)
    state = _advance_phase(state, params, mark_price)
    wanted = wanted_stop(state, params)
    if wanted is None:
        return state, Hold(HoldReason.NOT_ACTIVE)
    if not is_tighter(state.side, wanted, state.stop_price):
        return state, Hold(HoldReason.NOT_TIGHTER)
    improvement = improvement_pct(wanted, state.stop_price)
    bypassed = improvement is not None and improvement >= params.bypass_improvement_pct
    if improvement is not None and not bypassed:
        if improvement < params.min_improvement_pct:
            return state, Hold(HoldReason.TOO_SMALL)
        if _too_soon(state, params, now_s):
            return state, Hold(HoldReason.TOO_SOON)
    if has_crossed(state.side, mark_price, wanted):
        return state, CloseNow(wanted, mark_price)
    sent = dataclasses.replace(state, stop_price=wanted, last_sent_at_s=now_s)
    return sent, MoveStop(wanted, state.stop_price, improvement, bypassed)


def wanted_stop(state: TrailState, params: TrailingParams) -> Decimal | None:
    """The stop the phase asks for, on the tick grid; None while only watching."""
    if state.phase is TrailPhase.TRAILING:
        raw = moved_by_pct(state.side, state.extreme_price, -params.callback_pct)
        return safe_stop_on_tick(state.side, raw, state.tick_size)
    if state.phase is TrailPhase.BREAKEVEN:
        return safe_stop_on_tick(state.side, state.entry_price, state.tick_size)
    return None


def improvement_pct(wanted: Decimal, current: Decimal | None) -> Decimal | None:
    """How much tighter `wanted` is than `current`, in percent of `current`."""
    if current is None:
        return None
    return abs(wanted - current) / current * HUNDRED


def activation_price(state: TrailState, params: TrailingParams) -> Decimal:
    return moved_by_pct(state.side, state.entry_price, params.activation_pct)


def _track_extreme(state: TrailState, mark_price: Decimal) -> TrailState:
    if (mark_price - state.extreme_price) * state.side.sign > 0:
        return dataclasses.replace(state, extreme_price=mark_price)
    return state


def _reached(state: TrailState, mark_price: Decimal, threshold: Decimal) -> bool:
    return (mark_price - threshold) * state.side.sign >= 0


def _advance_phase(state: TrailState, params: TrailingParams, mark_price: Decimal) -> TrailState:
    if state.phase is TrailPhase.TRAILING:
        return state
    if _reached(state, mark_price, activation_price(state, params)):
        return transition(state, TrailPhase.TRAILING)
    be = params.breakeven_trigger_pct
    if state.phase is not TrailPhase.WATCHING or be is None:
        return state
    if _reached(state, mark_price, moved_by_pct(state.side, state.entry_price, be)):
        return transition(state, TrailPhase.BREAKEVEN)
    return state


def _too_soon(state: TrailState, params: TrailingParams, now_s: float) -> bool:
    if state.last_sent_at_s is None:
        return False
    return now_s - state.last_sent_at_s < params.min_update_interval_s
