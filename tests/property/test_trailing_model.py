"""The trailing core against a reference model written from the rules of docs/protection.md.

The model keeps its own books in exact fractions with explicit long/short branches: the best
price seen, whether the trail ever activated, the stop the rules want, the stop the exchange is
known to hold. Between marks, random things happen as they do on an exchange: a reply confirms
the stop, fails, or refuses it as on the wrong side; someone sets a stop by hand (tighter or
looser than the trail's); the position is added to (a new average entry); the process restarts
(nothing the exchange holds is known any more). After every mark the core must decide what the
model decides, hold the same stop, and keep the invariants: the trail's stop never loosens, a
trigger price through it always closes, a stop sent is on the tick grid and on the safe side.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from math import ceil, floor

from hypothesis import given, settings
from hypothesis import strategies as st

from bybit_hybrid.protection import trailing as core
from bybit_hybrid.protection.trailing import CloseNow, Hold, MoveStop, TrailingParams
from bybit_hybrid.protocol.domain import Side

TICKS = [Decimal("0.1"), Decimal("0.01"), Decimal("0.5"), Decimal("0.0001"), Decimal("1")]


@dataclass
class Model:
    long: bool
    entry: Fraction
    tick: Fraction
    p: TrailingParams
    best: Fraction
    activated: bool = False
    breakeven: bool = False
    wanted: Fraction | None = None
    held: Fraction | None = None  # what the exchange is known to hold
    moved_at: float | None = None  # when a reply last confirmed a stop of ours
    refused: Fraction | None = None

    def better(self, a: Fraction, b: Fraction | None) -> bool:
        """`a` protects more than `b` (None protects nothing)."""
        return b is None or (a > b if self.long else a < b)

    def tightest(self, a: Fraction | None, b: Fraction | None) -> Fraction | None:
        if a is None:
            return b
        return a if self.better(a, b) else b

    def pct(self, name: str) -> Fraction:
        return Fraction(getattr(self.p, name)) / 100

    def reached(self, mark: Fraction, pct: Fraction) -> bool:
        return mark >= self.entry * (1 + pct) if self.long else mark <= self.entry * (1 - pct)

    def rule_stop(self) -> Fraction | None:
        t = self.tick
        if self.activated:
            cb = self.pct("callback_pct")
            if self.long:
                return floor(self.best * (1 - cb) / t) * t
            return ceil(self.best * (1 + cb) / t) * t
        if self.breakeven:
            fees = 2 * self.pct("fee_pct_per_side")
            if self.long:
                return ceil(self.entry * (1 + fees) / t) * t  # toward profit
            return floor(self.entry * (1 - fees) / t) * t
        return None

    def may_send(self, stop: Fraction, now: float) -> bool:
        if self.held is None:
            return True  # a first stop goes at once
        gain = abs(stop - self.held) / self.held * 100
        if gain >= Fraction(self.p.bypass_improvement_pct):
            return True
        waited = self.moved_at is None or now - self.moved_at >= self.p.min_update_interval_s
        return gain >= Fraction(self.p.min_improvement_pct) and waited

    def on_mark(self, mark: Fraction, now: float, trigger: Fraction) -> tuple[str, Fraction | None]:
        self.best = max(self.best, mark) if self.long else min(self.best, mark)
        if self.reached(mark, self.pct("activation_pct")):
            self.activated = True
        be = self.p.breakeven_trigger_pct
        if be is not None and self.reached(mark, Fraction(be) / 100):
            self.breakeven = True
        rule = self.rule_stop()
        current = self.tightest(self.wanted, self.held)
        if rule is not None and self.better(rule, current) and self.may_send(rule, now):
            self.wanted = rule
        stop = self.tightest(self.wanted, self.held)
        if stop is not None and not self.better(trigger, stop):
            return "close", stop
        pending = self.wanted is not None and self.better(self.wanted, self.held)
        if pending and self.wanted != self.refused:
            return "move", self.wanted
        return "hold", None


params_st = st.builds(
    TrailingParams,
    activation_pct=st.sampled_from([Decimal("0.5"), Decimal("2"), Decimal("5")]),
    callback_pct=st.sampled_from([Decimal("0.2"), Decimal("0.5"), Decimal("1.5")]),
    breakeven_trigger_pct=st.sampled_from([None, Decimal("0.3"), Decimal("1")]),
    min_update_interval_s=st.sampled_from([0.0, 5.0, 30.0]),
    min_improvement_pct=st.sampled_from([Decimal(0), Decimal("0.05"), Decimal("0.2")]),
    bypass_improvement_pct=st.sampled_from([Decimal("0.3"), Decimal("1.0"), Decimal("2.5")]),
    fee_pct_per_side=st.sampled_from([Decimal(0), Decimal("0.055"), Decimal("0.1")]),
)

# One event between marks: (kind, a number to shape it)
event_st = st.tuples(
    st.sampled_from(["mark"] * 6 + ["ok", "ok", "fail", "refused", "hand", "add", "restart"]),
    st.integers(-40, 40),
    st.integers(0, 20),
)


def frac(d: Decimal) -> Fraction:
    return Fraction(d)


@settings(max_examples=250, deadline=None)
@given(
    st.sampled_from([Side.BUY, Side.SELL]),
    st.sampled_from(TICKS),
    st.integers(200, 200_000),
    params_st,
    st.lists(event_st, min_size=30, max_size=300),
    st.integers(0, 30),
)
def test_core_agrees_with_the_rules(  # noqa: PLR0917 (hypothesis draws)
    side: Side,
    tick: Decimal,
    entry_ticks: int,
    params: TrailingParams,
    events: list[tuple[str, int, int]],
    lag_ticks: int,
) -> None:
    entry = entry_ticks * tick
    state = core.new_trail(side, entry, tick, entry)
    model = Model(side is Side.BUY, frac(entry), frac(tick), params, frac(entry))
    mark, now = entry, 0.0
    last_move: MoveStop | None = None
    protecting: Fraction | None = None
    for i, (kind, amount, seconds) in enumerate(events):
        if kind == "mark":
            mark = max(tick, mark + amount * tick * max(1, entry_ticks // 2000))
            now += seconds
            # the trigger price lags or leads the mark by a few ticks (a LastPrice trigger)
            trigger = mark + (lag_ticks % 7 - 3) * tick * (amount % 2)
            state, decision = core.on_mark(state, params, mark, now, trigger)
            want_kind, want_stop = model.on_mark(frac(mark), now, frac(trigger))
            got = (
                ("close", frac(decision.stop_price))
                if isinstance(decision, CloseNow)
                else ("move", frac(decision.stop_price))
                if isinstance(decision, MoveStop)
                else ("hold", None)
            )
            assert got == (want_kind, want_stop), (i, decision, model)
            assert (state.stop_price is None) == (model.tightest(model.wanted, model.held) is None)
            if state.stop_price is not None:
                assert frac(state.stop_price) == model.tightest(model.wanted, model.held)
                assert protecting is None or not model.better(protecting, frac(state.stop_price))
                protecting = frac(state.stop_price)
            if isinstance(decision, MoveStop):
                assert decision.stop_price % tick == 0
                assert (trigger - decision.stop_price) * side.sign > 0, "never a crossed stop"
            last_move = decision if isinstance(decision, MoveStop) else None
            continue
        if kind == "ok" and last_move is not None:
            state = core.confirmed(state, last_move.stop_price, now)
            model.held, model.moved_at, model.refused = frac(last_move.stop_price), now, None
        elif kind == "refused" and last_move is not None:
            state = core.rejected(state, last_move.stop_price)
            model.refused = frac(last_move.stop_price)
        elif kind == "hand":
            hand = mark - side.sign * (abs(amount) + 1) * tick  # on the safe side of the mark
            if hand > 0:
                state = core.seen_on_exchange(state, hand)
                model.held = frac(hand)
                if model.better(model.held, model.wanted):
                    model.wanted = model.held
        elif kind == "add":
            new_entry = max(tick, entry + amount * tick)
            state = core.rebase_entry(state, new_entry)
            model.entry = frac(new_entry)
        elif kind == "restart":
            state = core.restored(state)
            model.held, model.moved_at, model.refused = None, None, None
        last_move = None if kind != "fail" else last_move


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([Side.BUY, Side.SELL]), st.sampled_from(TICKS), params_st, st.data())
def test_a_trigger_price_through_the_stop_always_closes(
    side: Side, tick: Decimal, params: TrailingParams, data: st.DataObject
) -> None:
    entry = 1000 * tick * 10
    state = core.new_trail(side, entry, tick, entry)
    held = data.draw(st.integers(1, 50)) * tick
    state = core.seen_on_exchange(state, entry - side.sign * held)
    through = data.draw(st.integers(0, 30)) * tick
    trigger = entry - side.sign * (held + through)
    _, decision = core.on_mark(state, params, entry, 0.0, trigger)
    assert isinstance(decision, CloseNow) and decision.stop_price == entry - side.sign * held
    assert not isinstance(decision, Hold)
