"""The trailing core against a plain reference model over long random price paths, both sides.

The model below is written from the rules in the issue, independently of the core (its own
rounding, its own comparisons). Every step must agree: the same decision, the same stop. On top
the invariants are checked directly: never loosen, exact activation, ticks, rate and bypass.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from bybit_hybrid.protection import trailing as core
from bybit_hybrid.protection.trailing import CloseNow, Hold, MoveStop, TrailingParams
from bybit_hybrid.protocol.domain import Side

TICKS = [Decimal("0.1"), Decimal("0.01"), Decimal("0.5"), Decimal("0.0001"), Decimal("1")]


@dataclass
class Model:
    """The rules, spelled out the long way."""

    side: Side
    entry: Decimal
    tick: Decimal
    extreme: Decimal
    p: TrailingParams
    active: bool = False
    breakeven: bool = False
    stop: Decimal | None = None
    last_sent: float | None = None

    @property
    def long(self) -> bool:
        return self.side is Side.BUY

    def floor(self, x: Decimal) -> Decimal:
        # Decimal `//` truncates toward zero, which is the floor for the positive prices here.
        return (x // self.tick) * self.tick

    def ceil(self, x: Decimal) -> Decimal:
        down = self.floor(x)
        return down if down == x else down + self.tick

    def adopt(self, exchange_stop: Decimal) -> None:
        if self.stop is None:
            self.stop = exchange_stop
            return
        tighter = exchange_stop > self.stop if self.long else exchange_stop < self.stop
        if tighter:
            self.stop = exchange_stop

    def step(self, mark: Decimal, now: float) -> tuple[str, Decimal | None]:
        p = self.p
        if self.long:
            self.extreme = max(self.extreme, mark)
            if mark >= self.entry * (1 + p.activation_pct / 100):
                self.active = True
            be = p.breakeven_trigger_pct
            if be is not None and mark >= self.entry * (1 + be / 100):
                self.breakeven = True
        else:
            self.extreme = min(self.extreme, mark)
            if mark <= self.entry * (1 - p.activation_pct / 100):
                self.active = True
            be = p.breakeven_trigger_pct
            if be is not None and mark <= self.entry * (1 - be / 100):
                self.breakeven = True
        if self.active:
            if self.long:
                wanted = self.floor(self.extreme * (1 - p.callback_pct / 100))
            else:
                wanted = self.ceil(self.extreme * (1 + p.callback_pct / 100))
        elif self.breakeven:
            wanted = self.floor(self.entry) if self.long else self.ceil(self.entry)
        else:
            return "hold", None
        if self.stop is not None:
            if self.long and wanted <= self.stop:
                return "hold", None
            if not self.long and wanted >= self.stop:
                return "hold", None
            improvement = abs(wanted - self.stop) / self.stop * 100
            if improvement < p.bypass_improvement_pct:
                if improvement < p.min_improvement_pct:
                    return "hold", None
                if self.last_sent is not None and now - self.last_sent < p.min_update_interval_s:
                    return "hold", None
        if (self.long and mark <= wanted) or (not self.long and mark >= wanted):
            return "close", wanted
        self.stop = wanted
        self.last_sent = now
        return "move", wanted


params_st = st.builds(
    TrailingParams,
    activation_pct=st.sampled_from([Decimal(x) for x in ("0.1", "0.5", "1", "2.0", "3.7")]),
    callback_pct=st.sampled_from([Decimal(x) for x in ("0.1", "0.25", "0.5", "1", "2")]),
    breakeven_trigger_pct=st.sampled_from([None, Decimal("0.3"), Decimal("1.0")]),
    min_update_interval_s=st.sampled_from([0.0, 5.0, 30.0]),
    min_improvement_pct=st.sampled_from([Decimal(0), Decimal("0.05"), Decimal("0.2")]),
    bypass_improvement_pct=st.sampled_from([Decimal("0.3"), Decimal("1.0"), Decimal("2.5")]),
)

# One step of the path: price move in ticks, seconds elapsed, and maybe a hand-set stop
# (as an offset from the mark in ticks, always on the protective side of the mark).
step_st = st.tuples(
    st.integers(-40, 40),
    st.sampled_from([0.1, 0.5, 1.0, 3.0, 10.0, 31.0]),
    st.one_of(st.none(), st.integers(1, 400)),
)


@st.composite
def scenario(draw: st.DrawFn) -> tuple[Side, Decimal, Decimal, TrailingParams, list[object]]:
    side = draw(st.sampled_from([Side.BUY, Side.SELL]))
    tick = draw(st.sampled_from(TICKS))
    start_ticks = draw(st.integers(5_000, 50_000))
    # Entry is an average fill price: not necessarily on the tick grid.
    entry = start_ticks * tick + draw(st.sampled_from([Decimal(0), tick / 3, tick / 2]))
    drift = draw(st.integers(-3, 3))
    steps = draw(st.lists(step_st, min_size=50, max_size=400))
    return side, entry, tick, draw(params_st), [(drift, *s) for s in steps]


@settings(max_examples=300, deadline=None)
@given(scenario())
def test_core_agrees_with_reference_model(
    case: tuple[Side, Decimal, Decimal, TrailingParams, list[tuple[int, int, float, int | None]]],
) -> None:
    side, entry, tick, params, steps = case
    mark = (entry // tick) * tick
    state = core.new_trail(side, entry, tick, mark)
    model = Model(side, entry, tick, mark, params)
    now = 1_700_000_000.0
    sent: list[float] = []
    first_reach: int | None = None
    first_active_decision: int | None = None
    threshold = entry * (1 + side.sign * params.activation_pct / 100)
    for i, (drift, move, dt, manual) in enumerate(steps):
        mark = max(tick, mark + (move + drift) * tick)
        now += dt
        if manual is not None and i % 7 == 0:
            hand = mark - side.sign * manual * tick
            if hand > 0:
                state = core.adopt_exchange_stop(state, hand)
                model.adopt(hand)
        before_stop = state.stop_price
        state, decision = core.on_mark(state, params, mark, now)
        kind, stop = model.step(mark, now)
        # 1. the core and the model agree on every step.
        if kind == "hold":
            assert isinstance(decision, Hold), (i, decision)
        elif kind == "close":
            assert stop is not None and decision == CloseNow(stop, mark), (i, decision)
        else:
            assert isinstance(decision, MoveStop) and decision.stop_price == stop, (i, decision)
        assert state.stop_price == model.stop
        assert state.extreme_price == model.extreme
        # 2. exact activation: active from the first mark at/after the threshold, never before.
        if first_reach is None and (mark - threshold) * side.sign >= 0:
            first_reach = i
        if state.is_active and first_active_decision is None:
            first_active_decision = i
        if isinstance(decision, MoveStop):
            new = decision.stop_price
            # 3. never loosen: strictly tighter than whatever was there.
            if before_stop is not None:
                assert (new - before_stop) * side.sign > 0
            # 4. on the tick grid, and rounded away from the mark (safe side).
            assert new % tick == 0
            assert (mark - new) * side.sign > 0
            if state.is_active:
                raw = state.extreme_price * (1 - side.sign * params.callback_pct / 100)
                assert 0 <= (raw - new) * side.sign < tick
            # 5. rate rules: a first stop goes at once; later ones need interval and minimum
            # improvement (over the stop in place, ours or adopted) unless bypassed.
            prev = decision.previous_stop
            if prev is not None:
                improvement = abs(new - prev) / prev * 100
                assert decision.bypassed == (improvement >= params.bypass_improvement_pct)
                if not decision.bypassed:
                    assert improvement >= params.min_improvement_pct
                    if sent:
                        assert now - sent[-1] >= params.min_update_interval_s
            sent.append(now)
    assert first_active_decision == first_reach


@settings(max_examples=100, deadline=None)
@given(scenario())
def test_stops_only_tighten_whatever_the_path(
    case: tuple[Side, Decimal, Decimal, TrailingParams, list[tuple[int, int, float, int | None]]],
) -> None:
    side, entry, tick, params, steps = case
    mark = (entry // tick) * tick
    state = core.new_trail(side, entry, tick, mark)
    now = 0.0
    stops: list[Decimal] = []
    for drift, move, dt, _ in steps:
        mark = max(tick, mark + (move - drift) * tick)  # the opposite drift as well
        now += dt
        state, _decision = core.on_mark(state, params, mark, now)
        if state.stop_price is not None:
            stops.append(state.stop_price)
    assert all((b - a) * side.sign >= 0 for a, b in itertools.pairwise(stops))
