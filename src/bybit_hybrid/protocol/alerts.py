"""Stream-health alerts: each threshold raises a warning or critical, and clears when it clears.

The shell samples the streams (`HealthSample`) and calls `evaluate(now, sample)`; the result
is the list of alerts raised (or escalated) and cleared since the last call. Timers (how long a
socket has been down, reconnects in the last hour) are kept here, with `now` passed in.

    socket_down.<socket>    down >= 30 s warning, >= 2 min critical
    no_events               positions open, no position event for 60 s warning, 5 min critical
    reconnects              more than 5 reconnects in the last hour: critical
    subscription_failures   more than 5 failed subscribes in the last hour: warning
    zero_subscriptions      positions open, tickers expected, every public socket up and
                            heard from since (a reply, a pong), none confirmed for 5 s:
                            critical (a down or unheard-from socket is `socket_down`'s)
    mark_stale              one alert for every held symbol whose ticker is silent for 5 s or
                            whose mark REST contradicted: warning, naming the symbols

Without storms (issue 19 F7): an outage is one cause, so it is not also `zero_subscriptions`,
and N stale symbols are one `mark_stale`; an alert clears only after its condition has been
gone for `clear_hold_s` (a flapping socket keeps one alert on instead of raising it again and
again); nothing is raised in the first `startup_grace_s` after the first evaluation, while the
sockets connect, but the timers run from start, so a real fault fires once the grace is over.
An active alert keeps its highest severity until it clears. Where each default comes from is
in docs/rollout.md ("Alerts").
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Final

# The private socket's name in `HealthSample.sockets_up` (`protocol.hybrid.PRIVATE`); every
# other name is a public shard.
PRIVATE: Final = "private"


class Severity(Enum):
    WARNING = "warning"
    CRITICAL = "critical"


@dataclass(frozen=True, slots=True)
class AlertConfig:
    """Thresholds (AppSettings `rollout_*`); docs/rollout.md says where each comes from."""

    socket_down_warning_s: float = 30.0
    socket_down_critical_s: float = 120.0
    no_events_warning_s: float = 60.0
    no_events_critical_s: float = 300.0
    reconnects_per_hour_critical: int = 5
    subscription_failures_warning: int = 5
    mark_stale_s: float = 5.0
    # A subscribe takes a round trip: zero confirmed tickers is only alarming after this.
    zero_subscriptions_grace_s: float = 5.0
    window_s: float = 3600.0
    # An alert clears once its condition has been gone this long (a choice: two mark-stale
    # periods, longer than one reconnect with its backoff).
    clear_hold_s: float = 10.0
    # Nothing is raised this long after the first evaluation (connect, auth, subscribe).
    startup_grace_s: float = 10.0
    # Symbols named in the `mark_stale` message; the rest are counted.
    named_symbols_max: int = 5

    def __post_init__(self) -> None:
        if min(self.clear_hold_s, self.startup_grace_s) < 0:
            raise ValueError("clear_hold_s and startup_grace_s must not be negative")


@dataclass(frozen=True, slots=True)
class HealthSample:
    """The streams at one instant, as the shell reads them."""

    sockets_up: Mapping[str, bool] = field(default_factory=dict)
    # When the last position event (open, change, close, mark) was emitted; None: never.
    last_event_at: float | None = None
    reconnections: int = 0
    subscription_failures: int = 0
    open_positions: int = 0
    expected_tickers: int = 0
    confirmed_tickers: int = 0
    # Seconds since each held, streamed symbol's ticker last showed life (any frame, a pong).
    mark_ages_s: Mapping[str, float] = field(default_factory=dict)
    # Held symbols whose mark is bad for another reason (REST contradicted a frozen mark).
    bad_marks: Mapping[str, str] = field(default_factory=dict)
    # When each socket last received a frame of any kind (a pong included); missing: never.
    heard_at: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AlertRaised:
    """An alert fired, or escalated from warning to critical."""

    name: str
    severity: Severity
    message: str
    at: float


@dataclass(frozen=True, slots=True)
class AlertCleared:
    name: str
    severity: Severity
    message: str
    at: float


AlertEvent = AlertRaised | AlertCleared


@dataclass(frozen=True, slots=True)
class ActiveAlert:
    severity: Severity
    message: str
    since: float


@dataclass(slots=True)
class AlertStats:
    raised_warning: int = 0
    raised_critical: int = 0
    cleared: int = 0


_Wanted = dict[str, tuple[Severity, str]]


class Alerts:
    """Active alerts and the timers behind them; see the module docstring."""

    def __init__(self, config: AlertConfig | None = None) -> None:
        self.config = config or AlertConfig()
        self._active: dict[str, ActiveAlert] = {}
        self._down_since: dict[str, float] = {}
        self._zero_since: float | None = None
        self._zero_reconnections = 0
        self._open_since: float | None = None
        self._reconnects: deque[float] = deque()
        self._failures: deque[float] = deque()
        self._last_reconnections = 0
        self._last_failures = 0
        self._started_at: float | None = None
        # When each active alert's condition was last seen (its clear waits `clear_hold_s`).
        self._seen_at: dict[str, float] = {}
        self.stats = AlertStats()

    def evaluate(self, now: float, sample: HealthSample) -> list[AlertEvent]:
        self._count_new(now, sample)
        wanted: _Wanted = {}
        self._sockets(now, sample, wanted)
        self._no_events(now, sample, wanted)
        self._rates(wanted)
        self._zero_subscriptions(now, sample, wanted)
        self._mark_stale(sample, wanted)
        if self._started_at is None:
            self._started_at = now
        if now - self._started_at < self.config.startup_grace_s:
            wanted = {name: w for name, w in wanted.items() if name in self._active}
        return self._diff(now, wanted)

    def active(self) -> dict[str, ActiveAlert]:
        return dict(self._active)

    def status(self, now: float) -> dict[str, object]:
        return {
            "active": {
                name: {
                    "severity": a.severity.value,
                    "message": a.message,
                    "for_s": round(now - a.since, 3),
                }
                for name, a in sorted(self._active.items())
            },
            "raised_warning": self.stats.raised_warning,
            "raised_critical": self.stats.raised_critical,
            "cleared": self.stats.cleared,
        }

    # --- thresholds -------------------------------------------------------------------------

    def _sockets(self, now: float, sample: HealthSample, wanted: _Wanted) -> None:
        cfg = self.config
        for name, up in sample.sockets_up.items():
            if up:
                self._down_since.pop(name, None)
                continue
            down_s = now - self._down_since.setdefault(name, now)
            severity = _level(down_s, cfg.socket_down_warning_s, cfg.socket_down_critical_s)
            alert = f"socket_down.{name}"
            if severity is None and alert in self._active:
                # Down again after a short reconnect: the same outage, the alert stays on.
                severity = self._active[alert].severity
            if severity is not None:
                wanted[alert] = (severity, f"{name} down {down_s:.0f}s")
        for name in self._down_since.keys() - sample.sockets_up.keys():
            del self._down_since[name]  # a retired shard is not down

    def _no_events(self, now: float, sample: HealthSample, wanted: _Wanted) -> None:
        """A flat account is quiet by right; an open position should be revalued all along."""
        cfg = self.config
        if sample.open_positions == 0:
            self._open_since = None
            return
        if self._open_since is None:
            self._open_since = now
        quiet_s = now - max(sample.last_event_at or self._open_since, self._open_since)
        severity = _level(quiet_s, cfg.no_events_warning_s, cfg.no_events_critical_s)
        if severity is not None:
            wanted["no_events"] = (severity, f"no events for {quiet_s:.0f}s")

    def _rates(self, wanted: _Wanted) -> None:
        cfg = self.config
        if len(self._reconnects) > cfg.reconnects_per_hour_critical:
            message = f"{len(self._reconnects)} reconnects in the last hour"
            wanted["reconnects"] = (Severity.CRITICAL, message)
        if len(self._failures) > cfg.subscription_failures_warning:
            message = f"{len(self._failures)} subscription failures in the last hour"
            wanted["subscription_failures"] = (Severity.WARNING, message)

    def _mark_stale(self, sample: HealthSample, wanted: _Wanted) -> None:
        """Every bad mark in one alert: an outage makes them all stale at once."""
        bad = {
            symbol: f"ticker silent {age_s:.1f}s"
            for symbol, age_s in sample.mark_ages_s.items()
            if age_s >= self.config.mark_stale_s
        }
        bad.update(sample.bad_marks)
        if not bad:
            return
        shown = sorted(bad)[: self.config.named_symbols_max]
        message = ", ".join(f"{symbol} ({bad[symbol]})" for symbol in shown)
        if len(bad) > len(shown):
            message += f" and {len(bad) - len(shown)} more"
        wanted["mark_stale"] = (Severity.WARNING, f"{len(bad)} stale marks: {message}")

    def _zero_subscriptions(self, now: float, sample: HealthSample, wanted: _Wanted) -> None:
        """Critical only on evidence: every public socket up *and heard from* since the zero
        stretch began (its subscribe replies, a pong), yet no ticker confirmed. A socket that
        is merely unheard-from (a black hole whose pong is not yet overdue) may be dead; the
        shell reports it down once the pong is overdue, and then it is `socket_down`'s."""
        public = [name for name in sample.sockets_up if name != PRIVATE]
        # A public socket that is down cannot confirm tickers: that is `socket_down`'s alert.
        public_down = any(not sample.sockets_up[name] for name in public)
        zero = (
            not public_down
            and sample.open_positions > 0
            and sample.expected_tickers > 0
            and sample.confirmed_tickers == 0
        )
        if not zero or sample.reconnections != self._zero_reconnections:
            # A redial replaced a socket: what was heard on the old one proves nothing.
            self._zero_since = None
            self._zero_reconnections = sample.reconnections
        if not zero:
            return
        if self._zero_since is None:
            self._zero_since = now
        since = self._zero_since
        if any(sample.heard_at.get(name, -math.inf) < since for name in public):
            return  # not heard from since the subscribes went out: no evidence yet
        zero_s = now - since
        if zero_s >= self.config.zero_subscriptions_grace_s:
            message = f"{sample.open_positions} positions open, no ticker subscribed"
            wanted["zero_subscriptions"] = (Severity.CRITICAL, message)

    # --- bookkeeping ------------------------------------------------------------------------

    def _count_new(self, now: float, sample: HealthSample) -> None:
        """Turns the streams' cumulative counters into timestamps within the window."""
        new = max(0, sample.reconnections - self._last_reconnections)
        self._reconnects.extend([now] * new)
        self._last_reconnections = sample.reconnections
        new = max(0, sample.subscription_failures - self._last_failures)
        self._failures.extend([now] * new)
        self._last_failures = sample.subscription_failures
        horizon = now - self.config.window_s
        for times in (self._reconnects, self._failures):
            while times and times[0] <= horizon:
                times.popleft()

    def _diff(self, now: float, wanted: _Wanted) -> list[AlertEvent]:
        events: list[AlertEvent] = []
        for name in wanted:
            self._seen_at[name] = now
        for name in sorted(self._active.keys() - wanted.keys()):
            if now - self._seen_at.get(name, now) < self.config.clear_hold_s:
                continue  # held: a condition that flaps keeps one alert on
            gone = self._active.pop(name)
            self._seen_at.pop(name, None)
            self.stats.cleared += 1
            events.append(AlertCleared(name, gone.severity, gone.message, now))
        for name, (severity, message) in sorted(wanted.items()):
            current = self._active.get(name)
            if current is not None and _rank(current.severity) >= _rank(severity):
                # Still on: keep its start and its highest severity, refresh the text.
                self._active[name] = ActiveAlert(current.severity, message, current.since)
                continue
            self._active[name] = ActiveAlert(severity, message, now)
            if severity is Severity.CRITICAL:
                self.stats.raised_critical += 1
            else:
                self.stats.raised_warning += 1
            events.append(AlertRaised(name, severity, message, now))
        return events


def _rank(severity: Severity) -> int:
    return 1 if severity is Severity.CRITICAL else 0


def _level(value_s: float, warning_s: float, critical_s: float) -> Severity | None:
    if value_s >= critical_s:
        return Severity.CRITICAL
    if value_s >= warning_s:
        return Severity.WARNING
    return None
