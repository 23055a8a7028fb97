"""The aged core against a plain reference model over long random paths of marks and time.

The model: no exit before max age or while a trail is active; then close at the first mark
that reaches entry·(1 ± (2·fee − loss)/100), where loss is 0 during grace and grows by step per
hour afterwards up to the cap. Both sides; a failed close goes back to waiting.
"""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from bybit_hybrid.protection import aged as core
from bybit_hybrid.protection.aged import AgedClose, AgedHold, AgedParams, AgedPhase, AgedState
from bybit_hybrid.protocol.domain import Side

H = 3_600_000
BY_AGE = (AgedPhase.YOUNG, AgedPhase.GRACE, AgedPhase.PROGRESSIVE)


def model_target(p: AgedParams, side: Side, entry: Decimal, age_ms: int) -> Decimal | None:
    if age_ms < p.max_age_ms:
        return None
    past_grace_ms = age_ms - p.max_age_ms - p.grace_ms
    loss = Decimal(0)
    if past_grace_ms > 0:
        loss = min(p.max_loss_pct, p.step_pct_per_h * past_grace_ms / H)
    margin = 2 * p.fee_pct_per_side - loss
    if side is Side.BUY:
        return entry * (1 + margin / 100)
    return entry * (1 - margin / 100)


def model_phase(p: AgedParams, age_ms: int) -> AgedPhase:
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

# (price move in 0.01 steps, minutes elapsed, trail activates now, the close fails)
step_st = st.tuples(
    st.integers(-30, 30), st.integers(0, 20), st.booleans(), st.sampled_from([False, False, True])
)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from([Side.BUY, Side.SELL]),
    params_st,
    st.integers(0, 6 * H),
    st.lists(step_st, min_size=50, max_size=400),
    st.integers(0, 100),
)
def test_core_agrees_with_reference_model(
    side: Side,
    params: AgedParams,
    already_open_ms: int,
    steps: list[tuple[int, int, bool, bool]],
    trail_from: int,
) -> None:
    entry = Decimal("100.00")
    now_ms = 1_700_000_000_000
    state = AgedState(side, entry, now_ms - already_open_ms)
    mark = entry
    closed_by_us = False
    trail_on = False
    last_order = 0
    for i, (move, minutes, _, fail) in enumerate(steps):
        mark = max(Decimal("0.01"), mark + move * Decimal("0.01"))
        now_ms += minutes * 60_000
        trail_on = trail_on or i == trail_from
        age_ms = now_ms - state.opened_at_ms
        state_before = state
        state, decision = core.on_mark(state, params, mark, now_ms, trail_on)
        last_order = max(last_order, BY_AGE.index(model_phase(params, age_ms)))
        if closed_by_us or trail_on or state_before.phase is AgedPhase.TRAILING:
            # Once a trail owns the exit (or we closed), the aged monitor never acts again.
            assert isinstance(decision, AgedHold)
            continue
        target = model_target(params, side, entry, age_ms)
        reached = target is not None and (mark - target) * side.sign >= 0
        if not reached:
            assert isinstance(decision, AgedHold), (i, decision)
            assert decision.target_price == target
            assert state.phase is BY_AGE[last_order]
            continue
        assert isinstance(decision, AgedClose), (i, decision, target)
        assert decision.target_price == target
        assert decision.phase is model_phase(params, age_ms)
        assert state.phase is AgedPhase.CLOSING
        if fail:
            state = core.close_failed(state, params, now_ms)
            assert state.phase is model_phase(params, age_ms)
        else:
            state = core.closed(state)
            closed_by_us = True


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
