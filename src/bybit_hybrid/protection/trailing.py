"""Trailing-stop decision core: extreme tracking, activation, tick-safe stops, update rules. Pure.

No asyncio and no clock: every call takes the mark and `now_s` (monotonic seconds), and returns
the new state with one decision. The adapter (`trailing_adapter.py`) executes decisions and
reports every outcome back (`confirmed`, `rejected`, `seen_on_exchange`).

Two stops, never confused:
- `confirmed_stop` is what the exchange is known to hold: the last stop a successful (or 34040
  "not modified") reply accepted, or the `stopLoss` the exchange shows (stream or REST);
- `wanted_stop` is what the rules want it to hold. A wanted stop tighter than the confirmed
  one is *unconfirmed*: every decision asks for it again (newest value only) until a reply or
  the exchange confirms it, or a tighter one supersedes it. A restored or monitor-only stop is
  unconfirmed until the exchange shows it.

Rules, per position (long shown; a short mirrors every comparison):
- the peak is the highest mark since the trail was created;
- BREAKEVEN (optional): once the mark reaches entry·(1 + breakeven%), the stop goes to the
  break-even price: entry plus the round-trip taker fees, rounded up to the tick (toward profit);
- TRAILING: once the mark reaches entry·(1 + activation%), the stop is peak·(1 − callback%),
  rounded down to the tick (a short rounds up);
- the stop only ever tightens; a first stop is sent at once; later moves need both the minimum
  interval since the last confirmed move and the minimum improvement over the confirmed stop,
  unless the improvement reaches the bypass percentage;
- the trail's stop is the tighter of the two; once the trigger price (the price type the
  exchange stop triggers on, the mark by default) is at or through it, the decision is to close
  at market, on every decision until the position is gone;
- a price the exchange rejected as on the wrong side of its trigger price is never sent again.
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
    profit_side_on_tick,
    safe_stop_on_tick,
)
from bybit_hybrid.protocol.domain import Side
from bybit_hybrid.protocol.errors import IllegalTransition, check_edge


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


# The protocol's error for an edge the table lacks; the old name stays importable.
IllegalTransitionError = IllegalTransition


# Bybit's non-VIP taker fee for USDT perpetuals, per side, in percent.
DEFAULT_TAKER_FEE_PCT: Final = Decimal("0.055")


@dataclass(frozen=True, slots=True)
class TrailingParams:
    """One symbol's trailing settings; percentages are plain percent (2.0 = 2 %)."""

    activation_pct: Decimal = Decimal("2.0")
    callback_pct: Decimal = Decimal("0.5")
    breakeven_trigger_pct: Decimal | None = None
    min_update_interval_s: float = 30.0
    min_improvement_pct: Decimal = Decimal("0.05")
    bypass_improvement_pct: Decimal = Decimal("1.0")
    fee_pct_per_side: Decimal = DEFAULT_TAKER_FEE_PCT

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
        if self.min_improvement_pct < 0:
            raise ValueError(f"min_improvement_pct must be >= 0, got {self.min_improvement_pct}")
        if self.bypass_improvement_pct <= 0:
            raise ValueError(
                f"bypass_improvement_pct must be > 0, got {self.bypass_improvement_pct}"
            )
        if self.bypass_improvement_pct < self.min_improvement_pct:
            raise ValueError(
                f"bypass_improvement_pct ({self.bypass_improvement_pct}) must be >= "
                f"min_improvement_pct ({self.min_improvement_pct})"
            )
        if not 0 <= self.fee_pct_per_side < 10:
            raise ValueError(f"fee_pct_per_side must be in [0, 10), got {self.fee_pct_per_side}")


@dataclass(frozen=True, slots=True)
class TrailState:
    """Everything a trail knows; the store persists it, less what only the exchange can confirm.

    `opened_at_ms` is the position lifetime the trail belongs to (the exchange's `openTime`,
    None when the exchange gave none): a later position at the same key never inherits it.
    `last_sent_at_s` is monotonic, so it is meaningless after a restart and is not restored.
    """

    side: Side
    entry_price: Decimal
    tick_size: Decimal
    extreme_price: Decimal  # peak for a long, trough for a short
    phase: TrailPhase = TrailPhase.WATCHING
    wanted_stop: Decimal | None = None
    confirmed_stop: Decimal | None = None
    last_sent_at_s: float | None = None
    opened_at_ms: int | None = None
    rejected_stop: Decimal | None = None  # refused as on the wrong side: never sent again

    @property
    def is_active(self) -> bool:
        """True once the trail activated (breakeven alone does not count)."""
        return self.phase is TrailPhase.TRAILING

    @property
    def stop_price(self) -> Decimal | None:
        """The trail's stop: the tighter of the wanted and the confirmed one."""
        return tighter_of(self.side, self.wanted_stop, self.confirmed_stop)

    @property
    def unconfirmed(self) -> bool:
        """True while the exchange is not known to hold the stop the trail wants."""
        wanted = self.wanted_stop
        return wanted is not None and is_tighter(self.side, wanted, self.confirmed_stop)


class HoldReason(StrEnum):
    NOT_ACTIVE = "not_active"
    NOT_TIGHTER = "not_tighter"
    TOO_SMALL = "too_small"
    TOO_SOON = "too_soon"
    REJECTED = "rejected"  # the wanted price was refused as on the wrong side


@dataclass(frozen=True, slots=True)
class Hold:
    """Nothing to send."""

    reason: HoldReason


@dataclass(frozen=True, slots=True)
class MoveStop:
    """Send `stop_price`; `previous_stop` is the confirmed one (None: the exchange holds none)."""

    stop_price: Decimal
    previous_stop: Decimal | None
    improvement_pct: Decimal | None
    bypassed: bool


@dataclass(frozen=True, slots=True)
class CloseNow:
    """The trigger price is at or through the trail's stop: close at market."""

    stop_price: Decimal
    mark_price: Decimal  # the trigger-type price that crossed it


Decision = Hold | MoveStop | CloseNow


def new_trail(
    side: Side,
    entry_price: Decimal,
    tick_size: Decimal,
    mark_price: Decimal | None,
    *,
    exchange_stop: Decimal | None = None,
    opened_at_ms: int | None = None,
) -> TrailState:
    """A trail created now; the extreme starts at the mark (the entry when no mark is known)."""
    if tick_size <= 0:
        raise ValueError(f"tick_size must be > 0, got {tick_size}")
    start = mark_price if mark_price is not None else entry_price
    state = TrailState(side, entry_price, tick_size, start, opened_at_ms=opened_at_ms)
    return seen_on_exchange(state, exchange_stop)


def transition(state: TrailState, phase: TrailPhase) -> TrailState:
    """Moves to `phase` along the transition table; staying put is allowed."""
    if check_edge(TRANSITIONS, state.phase, phase) is state.phase:
        return state
    return dataclasses.replace(state, phase=phase)


def seen_on_exchange(state: TrailState, exchange_stop: Decimal | None) -> TrailState:
    """The exchange shows `exchange_stop` (None: no stop): that is what it holds now.

    A tighter one (set by hand) also becomes the wanted stop, so no later send loosens it;
    a looser one leaves the wanted stop unconfirmed, so it is sent again.
    """
    wanted = state.wanted_stop
    if exchange_stop is not None and is_tighter(state.side, exchange_stop, wanted):
        wanted = exchange_stop
    if (wanted, exchange_stop) == (state.wanted_stop, state.confirmed_stop):
        return state
    return dataclasses.replace(state, wanted_stop=wanted, confirmed_stop=exchange_stop)


def confirmed(state: TrailState, stop: Decimal, now_s: float) -> TrailState:
    """A reply accepted `stop` (or said 34040: already there): the exchange holds it."""
    return dataclasses.replace(state, confirmed_stop=stop, last_sent_at_s=now_s, rejected_stop=None)


def rejected(state: TrailState, stop: Decimal) -> TrailState:
    """The exchange refused `stop` as on the wrong side of its trigger price."""
    return dataclasses.replace(state, rejected_stop=stop)


def restored(state: TrailState) -> TrailState:
    """A stored trail after a restart: nothing it sent counts until the exchange shows it."""
    return dataclasses.replace(state, confirmed_stop=None, last_sent_at_s=None, rejected_stop=None)


def rebase_entry(state: TrailState, entry_price: Decimal) -> TrailState:
    """A position added to or partly closed: new thresholds, same extreme and stops."""
    return dataclasses.replace(state, entry_price=entry_price)


def on_mark(
    state: TrailState,
    params: TrailingParams,
    mark_price: Decimal,
    now_s: float,
    trigger_price: Decimal | None = None,
) -> tuple[TrailState, Decision]:
    """One mark in: the updated state and what to do now.

    `trigger_price` is the latest price of the type the exchange stop triggers on (the mark
    when None). A new wanted stop is committed in the state as unconfirmed.
    """
    state = _advance_phase(_track_extreme(state, mark_price), params, mark_price)
    state, reason = _want(state, params, now_s)
    price = mark_price if trigger_price is None else trigger_price
    stop = state.stop_price
    if stop is not None and has_crossed(state.side, price, stop):
        return state, CloseNow(stop, price)
    if not state.unconfirmed:
        return state, Hold(reason)
    wanted = state.wanted_stop
    assert wanted is not None  # unconfirmed implies a wanted stop
    if wanted == state.rejected_stop:
        return state, Hold(HoldReason.REJECTED)
    improvement = improvement_pct(wanted, state.confirmed_stop)
    bypassed = improvement is not None and improvement >= params.bypass_improvement_pct
    return state, MoveStop(wanted, state.confirmed_stop, improvement, bypassed)


def _want(state: TrailState, params: TrailingParams, now_s: float) -> tuple[TrailState, HoldReason]:
    """Raises the wanted stop when the rules allow; else says why not."""
    candidate = phase_stop(state, params)
    if candidate is None:
        return state, HoldReason.NOT_ACTIVE
    if not is_tighter(state.side, candidate, state.stop_price):
        return state, HoldReason.NOT_TIGHTER
    improvement = improvement_pct(candidate, state.confirmed_stop)
    bypassed = improvement is not None and improvement >= params.bypass_improvement_pct
    if improvement is not None and not bypassed:
        if improvement < params.min_improvement_pct:
            return state, HoldReason.TOO_SMALL
        if _too_soon(state, params, now_s):
            return state, HoldReason.TOO_SOON
    return dataclasses.replace(state, wanted_stop=candidate), HoldReason.NOT_TIGHTER


def phase_stop(state: TrailState, params: TrailingParams) -> Decimal | None:
    """The stop the phase asks for, on the tick grid; None while only watching."""
    if state.phase is TrailPhase.TRAILING:
        raw = moved_by_pct(state.side, state.extreme_price, -params.callback_pct)
        return safe_stop_on_tick(state.side, raw, state.tick_size)
    if state.phase is TrailPhase.BREAKEVEN:
        return breakeven_stop(state, params)
    return None


def breakeven_stop(state: TrailState, params: TrailingParams) -> Decimal:
    """Entry plus both sides' taker fees, on the tick toward profit: flat after costs."""
    raw = moved_by_pct(state.side, state.entry_price, 2 * params.fee_pct_per_side)
    return profit_side_on_tick(state.side, raw, state.tick_size)


def improvement_pct(wanted: Decimal, current: Decimal | None) -> Decimal | None:
    """How much tighter `wanted` is than `current`, in percent of `current`."""
    if current is None:
        return None
    return abs(wanted - current) / current * HUNDRED


def tighter_of(side: Side, a: Decimal | None, b: Decimal | None) -> Decimal | None:
    if a is None:
        return b
    if b is None or is_tighter(side, a, b):
        return a
    return b


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
