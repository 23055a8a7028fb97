"""Whether a rejected API key ends the program: at once at start-up, only after a bound later.

A key rejected before it has ever worked in this process (no accepted private auth, no REST
snapshot) is wrong: retrying cannot fix it, so the verdict is `GiveUp` at once. A rejection
after that is usually transient (clock skew, an exchange hiccup): the streams keep retrying
with their backoff, protection keeps running on REST while REST works, and this guard raises
the `auth_rejected` alert (warning at once, critical after `critical_after_s`), clears it when
the key works again, and gives up only after `exit_after_s` of continuous rejection.

    STARTING --accepted--> WORKING --rejected--> REJECTED --accepted--> WORKING
    STARTING --rejected--> GAVE_UP         REJECTED --exit_after_s--> GAVE_UP

Pure: events and `now` (seconds, any monotonic origin) are passed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Final

from bybit_hybrid.protocol.alerts import AlertCleared, AlertRaised, Severity
from bybit_hybrid.protocol.domain import Socket
from bybit_hybrid.protocol.errors import next_state
from bybit_hybrid.protocol.hybrid import CoreEvent, Reconciled, RestFailed
from bybit_hybrid.protocol.session import AuthFailed, SessionState, StateChanged

ALERT: Final = "auth_rejected"


class AuthPhase(Enum):
    STARTING = "starting"
    WORKING = "working"
    REJECTED = "rejected"
    GAVE_UP = "gave_up"


class AuthInput(Enum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    EXPIRED = "expired"  # rejected for exit_after_s


TRANSITIONS: Final = {
    (AuthPhase.STARTING, AuthInput.ACCEPTED): AuthPhase.WORKING,
    (AuthPhase.STARTING, AuthInput.REJECTED): AuthPhase.GAVE_UP,
    (AuthPhase.WORKING, AuthInput.ACCEPTED): AuthPhase.WORKING,
    (AuthPhase.WORKING, AuthInput.REJECTED): AuthPhase.REJECTED,
    (AuthPhase.REJECTED, AuthInput.REJECTED): AuthPhase.REJECTED,
    (AuthPhase.REJECTED, AuthInput.ACCEPTED): AuthPhase.WORKING,
    (AuthPhase.REJECTED, AuthInput.EXPIRED): AuthPhase.GAVE_UP,
}


@dataclass(frozen=True, slots=True)
class AuthGuardConfig:
    critical_after_s: float = 60.0
    exit_after_s: float = 900.0

    def __post_init__(self) -> None:
        if not 0 < self.critical_after_s <= self.exit_after_s:
            raise ValueError("auth guard: need 0 < critical_after_s <= exit_after_s")


@dataclass(frozen=True, slots=True)
class GiveUp:
    """Stop the program; `reason` is the one line to print."""

    reason: str
    at_start: bool


AuthVerdict = AlertRaised | AlertCleared | GiveUp


class AuthGuard:
    """Feed it every core event (`on_event`) and call `evaluate` now and then.

    The private socket and REST are judged apart: REST snapshots arriving (failover polls)
    do not excuse a private socket that keeps being rejected, and the other way round.
    """

    def __init__(self, config: AuthGuardConfig | None = None) -> None:
        self.config = config or AuthGuardConfig()
        self.phase = AuthPhase.STARTING
        self.rejections = 0
        self._rejected: dict[str, float] = {}  # source -> rejected since
        self._last = ""
        self._severity: Severity | None = None

    def on_event(self, event: CoreEvent, now: float) -> list[AuthVerdict]:
        if self.phase is AuthPhase.GAVE_UP:
            return []
        source = _accepted(event)
        if source is not None:
            self._rejected.pop(source, None)
            if self._rejected:
                return []  # the other source is still rejected
            return self._move(AuthInput.ACCEPTED, now)
        rejection = _rejection(event)
        if rejection is None:
            return []
        source, self._last = rejection
        self._rejected.setdefault(source, now)
        self.rejections += 1
        return self._move(AuthInput.REJECTED, now)

    def evaluate(self, now: float) -> list[AuthVerdict]:
        if self.phase is not AuthPhase.REJECTED or not self._rejected:
            return []
        rejected_s = now - min(self._rejected.values())
        if rejected_s >= self.config.exit_after_s:
            return self._move(AuthInput.EXPIRED, now)
        if rejected_s >= self.config.critical_after_s and self._severity is Severity.WARNING:
            return [self._raise(Severity.CRITICAL, now)]
        return []

    def status(self, now: float) -> dict[str, object]:
        since = min(self._rejected.values(), default=None)
        return {
            "phase": self.phase.value,
            "rejected": sorted(self._rejected),
            "rejections": self.rejections,
            "rejected_for_s": None if since is None else round(now - since, 3),
        }

    def _move(self, what: AuthInput, now: float) -> list[AuthVerdict]:
        old = self.phase
        self.phase = new = next_state(TRANSITIONS, old, what)
        if new is AuthPhase.GAVE_UP:
            return [GiveUp(self._reason(old, now), at_start=old is AuthPhase.STARTING)]
        if old is not AuthPhase.REJECTED and new is AuthPhase.REJECTED:
            return [self._raise(Severity.WARNING, now)]
        if old is AuthPhase.REJECTED and new is AuthPhase.WORKING:
            return [self._clear(now)]
        return []

    def _reason(self, old: AuthPhase, now: float) -> str:
        if old is AuthPhase.STARTING:
            return f"Bybit rejected the API key at start-up: {self._last}"
        since = min(self._rejected.values(), default=now)
        return (
            f"Bybit has rejected the API key for {now - since:.0f}s "
            f"({self.rejections} rejections, auth_failure_exit_s={self.config.exit_after_s:g}); "
            f"giving up. Last: {self._last}"
        )

    def _raise(self, severity: Severity, now: float) -> AlertRaised:
        self._severity = severity
        message = f"API key rejected after it had worked: {self._last}"
        return AlertRaised(ALERT, severity, message, now)

    def _clear(self, now: float) -> AlertCleared:
        severity = self._severity or Severity.WARNING
        self._severity, self.rejections = None, 0
        return AlertCleared(ALERT, severity, "API key accepted again", now)


def _accepted(event: CoreEvent) -> str | None:
    """Which source the key just worked on: the private socket got past auth, or a REST
    snapshot was merged."""
    if isinstance(event, Reconciled):
        return "rest"
    if (
        isinstance(event, StateChanged)
        and event.connection == Socket.PRIVATE.value
        and event.old is SessionState.AUTHENTICATING
        and event.new is SessionState.SUBSCRIBING
    ):
        return "private"
    return None


def _rejection(event: CoreEvent) -> tuple[str, str] | None:
    if isinstance(event, AuthFailed):
        return "private", f"{event.connection} stream auth: {event.ret_msg}"
    if isinstance(event, RestFailed) and event.permanent:
        return "rest", f"rest {type(event.request).__name__}: {event.error}"
    return None
