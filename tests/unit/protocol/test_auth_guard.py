"""AuthGuard (issue 18 item 1), judged against the rules: a rejection before the key ever
worked ends the program; one after it is an alert that escalates and clears, and ends the
program only after `exit_after_s` of continuous rejection; REST and the private socket apart."""

from __future__ import annotations

import pytest

import bybit_hybrid.protocol.auth_guard as module
from bybit_hybrid.protocol.alerts import AlertCleared, AlertRaised, Severity
from bybit_hybrid.protocol.auth_guard import (
    TRANSITIONS,
    AuthGuard,
    AuthGuardConfig,
    AuthInput,
    AuthPhase,
    GiveUp,
)
from bybit_hybrid.protocol.errors import IllegalTransition, next_state
from bybit_hybrid.protocol.hybrid import FetchPositions, Reconciled, RestFailed
from bybit_hybrid.protocol.session import AuthFailed, SessionState, StateChanged

REJECTED = AuthFailed("private", "Params Error")
ACCEPTED = StateChanged(
    "private", SessionState.AUTHENTICATING, SessionState.SUBSCRIBING, "auth accepted"
)
SNAPSHOT = Reconciled("poll", 1, 0)
REST_REJECTED = RestFailed(
    FetchPositions(1, "poll"),
    "/v5/position/list failed with retCode 10003: 'API key is invalid.'",
    1.0,
    permanent=True,
)


def _guard() -> AuthGuard:
    return AuthGuard(AuthGuardConfig(critical_after_s=60, exit_after_s=900))


@pytest.mark.parametrize("event", [REJECTED, REST_REJECTED])
def test_a_rejection_before_the_key_ever_worked_gives_up_at_once(event: object) -> None:
    guard = _guard()
    [verdict] = guard.on_event(event, 0.0)  # type: ignore[arg-type]
    assert isinstance(verdict, GiveUp) and verdict.at_start
    assert "at start-up" in verdict.reason


def test_a_later_rejection_warns_escalates_then_gives_up_after_the_bound() -> None:
    guard = _guard()
    assert guard.on_event(ACCEPTED, 0.0) == []
    [warning] = guard.on_event(REJECTED, 10.0)
    assert isinstance(warning, AlertRaised) and warning.severity is Severity.WARNING
    assert guard.on_event(REJECTED, 20.0) == []  # repeats: one alert, counted
    assert guard.evaluate(69.9) == []
    [critical] = guard.evaluate(70.0)
    assert isinstance(critical, AlertRaised) and critical.severity is Severity.CRITICAL
    assert guard.evaluate(300.0) == []  # escalated once
    assert guard.evaluate(909.9) == []
    [give_up] = guard.evaluate(910.0)
    assert isinstance(give_up, GiveUp) and not give_up.at_start
    assert "900s" in give_up.reason and "2 rejections" in give_up.reason
    assert guard.phase is AuthPhase.GAVE_UP
    assert guard.on_event(ACCEPTED, 911.0) == []  # too late: the program is ending


def test_the_key_working_again_clears_the_alert_and_restarts_the_bound() -> None:
    guard = _guard()
    guard.on_event(ACCEPTED, 0.0)
    guard.on_event(REJECTED, 10.0)
    guard.evaluate(80.0)  # critical
    [cleared] = guard.on_event(ACCEPTED, 100.0)
    assert isinstance(cleared, AlertCleared) and cleared.severity is Severity.CRITICAL
    [again] = guard.on_event(REJECTED, 800.0)
    assert again.severity is Severity.WARNING  # type: ignore[union-attr]
    # The bound counts from the new rejection (800 s), not the first one (10 s).
    assert not any(isinstance(v, GiveUp) for v in guard.evaluate(1699.0))
    assert any(isinstance(v, GiveUp) for v in guard.evaluate(1700.0))


def test_rest_snapshots_do_not_excuse_a_private_socket_still_rejected() -> None:
    guard = _guard()
    guard.on_event(SNAPSHOT, 0.0)  # REST works: start-up is over
    guard.on_event(REJECTED, 10.0)
    for t in range(15, 900, 5):  # failover polls keep merging snapshots
        assert not any(isinstance(v, AlertCleared) for v in guard.on_event(SNAPSHOT, float(t)))
    assert any(isinstance(v, GiveUp) for v in guard.evaluate(910.0))


def test_a_rest_rejection_after_start_is_a_fault_too() -> None:
    guard = _guard()
    guard.on_event(ACCEPTED, 0.0)
    [warning] = guard.on_event(REST_REJECTED, 5.0)
    assert isinstance(warning, AlertRaised)
    [cleared] = guard.on_event(SNAPSHOT, 6.0)
    assert isinstance(cleared, AlertCleared)


def test_config_is_checked() -> None:
    with pytest.raises(ValueError):
        AuthGuardConfig(critical_after_s=10, exit_after_s=5)


def test_every_move_goes_through_the_table(monkeypatch: pytest.MonkeyPatch) -> None:
    """The guard uses the one transition helper every state machine shares (issue 17)."""
    seen: list[tuple[AuthPhase, AuthInput]] = []

    def spy(table: object, state: AuthPhase, trigger: AuthInput) -> AuthPhase:
        seen.append((state, trigger))
        return next_state(module.TRANSITIONS, state, trigger)

    monkeypatch.setattr(module, "next_state", spy)
    guard = _guard()
    guard.on_event(ACCEPTED, 0.0)
    guard.on_event(REJECTED, 1.0)
    assert seen == [
        (AuthPhase.STARTING, AuthInput.ACCEPTED),
        (AuthPhase.WORKING, AuthInput.REJECTED),
    ]


@pytest.mark.parametrize(
    ("phase", "what"),
    [
        (phase, what)
        for phase in AuthPhase
        for what in AuthInput
        if (phase, what) not in TRANSITIONS
    ],
)
def test_a_move_missing_from_the_table_names_input_and_phase(
    phase: AuthPhase, what: AuthInput
) -> None:
    guard = _guard()
    guard.phase = phase
    message = rf"^cannot handle event {what.value} in state {phase.value}$"
    with pytest.raises(IllegalTransition, match=message):
        guard._move(what, 0.0)
    assert guard.phase is phase
