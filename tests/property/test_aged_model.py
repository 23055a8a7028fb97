"""The aged core against a reference model written from the rules of docs/protection.md.

The rules, in the model's own terms (exact fractions, profit in percent of the entry): no exit
before max age or while a trail owns the exit; then close at the first mark whose profit reaches
the allowance, which is the round-trip fee during grace and shrinks by `step` per hour after it,
to at most `max_loss` below zero. The entry is the position's average: adds move it, and every
allowance follows. Both sides, random entries and sizes; a failed close goes back to waiting.
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from bybit_hybrid.protection import aged as core
from bybit_hybrid.protection.aged import AgedClose, AgedHold, AgedParams, AgedPhase, AgedState
from bybit_hybrid.protocol.domain import Side

H = 3_600_000
ENTRY_PLACES = Decimal("0.00000001")  # Bybit reports avgPrice to a fixed number of places


def allowance_pct(p: AgedParams, age_ms: int) -> Fraction | None:
    """Profit, in percent of entry, at which an aged position is let go; None while young."""
    if age_ms < p.max_age_ms:
        return None
    hours_past_grace = Fraction(max(0, age_ms - p.max_age_ms - p.grace_ms), H)
    loss = min(Fraction(p.max_loss_pct), Fraction(p.step_pct_per_h) * hours_past_grace)
    return 2 * Fraction(p.fee_pct_per_side) - loss


def profit_pct(side: Side, entry: Fraction, mark: Fraction) -> Fraction:
    move = mark - entry if side is Side.BUY else entry - mark
    return move / entry * 100


def phase_by_age(p: AgedParams, age_ms: int) -> AgedPhase:
    if age_ms < p.max_age_ms:
        return AgedPhase.YOUNG
    if age_ms < p.max_age_ms + p.grace_ms:
        return AgedPhase.GRACE
    return AgedPhase.PROGRESSIVE


params_st = st.builds(
    AgedParams,
    max_age_ms=st.sampled_from([H // 2, 3 * H]),
    grace_ms=st.sampled_from([0, H // 4, H]),
    fee_pct_per_side=st.sampled_from([Decimal(0), Decimal("0.05"), Decimal("0.1")]),
    step_pct_per_h=st.sampled_from([Decimal("0.5"), Decimal("2")]),
    max_loss_pct=st.sampled_from([Decimal("1"), Decimal("10")]),
)

# (price move in thousandths of the entry, minutes elapsed, add size (0: none), close fails)
step_st = st.tuples(
    st.integers(-8, 8),
    st.integers(0, 20),
    st.sampled_from([0] * 8 + [1, 3]),
    st.sampled_from([False, False, True]),
)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from([Side.BUY, Side.SELL]),
    params_st,
    st.integers(1_000, 9_000_000),
    st.integers(0, 6 * H),
    st.lists(step_st, min_size=50, max_size=400),
    st.integers(0, 100),
)
def test_core_agrees_with_the_rules(  # noqa: PLR0917 (hypothesis draws)
    side: Side,
    params: AgedParams,
    entry_cents: int,
    already_open_ms: int,
    steps: list[tuple[int, int, int, bool]],
    trail_from: int,
) -> None:
    entry = Decimal(entry_cents) / 100
    size = Decimal(1)
    now_ms = 1_700_000_000_000
    state = AgedState(side, entry, now_ms - already_open_ms)
    opened_ms = now_ms - already_open_ms
    mark = entry
    done = trail_on = False
    seen_phase = AgedPhase.YOUNG
    for i, (move, minutes, add, fail) in enumerate(steps):
        mark = max(Decimal("0.01"), mark + mark * move / 1000).quantize(Decimal("0.01"))
        now_ms += minutes * 60_000
        if add and not done:  # an add at this mark: the average entry moves
            total = size + add
            entry = ((entry * size + mark * add) / total).quantize(ENTRY_PLACES)
            size = total
            state = core.rebase_entry(state, entry)
        trail_on = trail_on or i == trail_from
        age_ms = now_ms - opened_ms
        state, decision = core.on_mark(state, params, mark, now_ms, trail_on)
        if done or trail_on:
            assert isinstance(decision, AgedHold)  # a trail (or our close) owns the exit
            continue
        allowed = allowance_pct(params, age_ms)
        by_age = phase_by_age(params, age_ms)
        order = (AgedPhase.YOUNG, AgedPhase.GRACE, AgedPhase.PROGRESSIVE)
        seen_phase = max(seen_phase, by_age, key=order.index)
        if allowed is None or profit_pct(side, Fraction(entry), Fraction(mark)) < allowed:
            assert isinstance(decision, AgedHold), (i, decision, allowed)
            assert state.phase is seen_phase
            continue
        assert isinstance(decision, AgedClose), (i, decision, allowed)
        assert decision.phase is by_age and state.phase is AgedPhase.CLOSING
        loss = 2 * Fraction(params.fee_pct_per_side) - allowed
        assert abs(Fraction(decision.accepted_loss_pct) - loss) < Fraction(1, 10**20)
        if fail:
            state = core.close_failed(state, params, now_ms)
            assert state.phase is by_age
        else:
            state = core.closed(state)
            done = True


@settings(max_examples=200, deadline=None)
@given(params_st, st.sampled_from([Side.BUY, Side.SELL]), st.integers(0, 40 * H))
def test_target_never_exceeds_fees_nor_the_loss_cap(
    params: AgedParams, side: Side, age_ms: int
) -> None:
    entry = Decimal("250.5")
    target = core.target_price(params, side, entry, age_ms)
    best = entry * (1 + side.sign * 2 * params.fee_pct_per_side / 100)
    worst = entry * (1 + side.sign * (2 * params.fee_pct_per_side - params.max_loss_pct) / 100)
    assert (best - target) * side.sign >= 0
    assert (target - worst) * side.sign >= -Decimal("1e-20")
