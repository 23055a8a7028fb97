"""Failover between the streams and REST polling: STREAMING / DEGRADED / POLLING per scope.

Theory of operation
===================

There is one scope for the account (the private stream: opens, changes, closes; POLLING
means REST polls positions fast) and one per held symbol (its public ticker: the mark;
POLLING means REST polls that symbol's mark). Each scope is a small state machine:

    STREAMING --suspect--> DEGRADED      trouble seen, below its threshold: poll fast, be ready
    DEGRADED  --healthy--> STREAMING     the trouble cleared before the threshold
    STREAMING --breach---> POLLING       threshold crossed: REST serves this scope at once
    DEGRADED  --breach---> POLLING
    POLLING   --recovered--> STREAMING   the streams were healthy for `healthy_for_s` in a row

`TRANSITIONS` is the whole table, looked up through `protocol.errors.next_state` like every
other machine (session, subscriptions); anything else raises `IllegalTransition` naming the
trigger and the mode. Each evaluation turns an observation into a `Condition` (HEALTHY,
SUSPECT, BREACH) and `_trigger` maps condition + mode to at most one trigger, so a scope moves
at most one edge per evaluation. The shell builds an observation per scope from the hybrid core
(is the private socket up, when was the symbol's ticker last heard, when did a frame last carry
its mark, did subscriptions fail) and calls `evaluate(now, ...)`; the machine keeps the timers
(down since, healthy since) and returns a `FailoverSwitched` per switch, with its reason. It
reads no clock: `now` is the shell's monotonic time.

A symbol's ticker is judged alive by any sign of life (issue 19 F4), not by mark changes:
Bybit's deltas omit unchanged fields, so in a quiet market the mark may not move for minutes
while frames (trades, book) flow. `heard_at` is the symbol's last ticker frame of any kind,
or the last frame (a pong included) on the public socket where its topic is confirmed; REST
seeds never count, so a dead ticker is not declared healthy by the marks REST serves while it
is POLLING. Silence for `mark_stale_s` is a breach. On a completely quiet shard (Bybit pushes
nothing) only the pongs to our pings are heard, so the shell gives public sockets an idle ping
below the SUSPECT share of `mark_stale_s` (`quiet_shard_ping_s`, 2 s by default).

A mark that has not changed for `mark_stale_s` while the ticker is alive is only *frozen*:
it is checked against one REST sample before anything switches. `take_mark_checks()` names
the symbols to sample (once per frozen stretch); the shell answers `on_mark_check`. REST
agreeing is a quiet market (the stretch restarts); REST disagreeing, with no mark frame since
the check was asked, is a breach ("mark frozen"). A failed check is retried a stretch later.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from typing import Final

from bybit_hybrid.protocol.errors import next_state

ACCOUNT: Final = "account"
_FROZEN: Final = "mark frozen"
_BUCKETS: Final = 10_000


def cutover_streams(symbol: str, pct: float) -> bool:
    """True if `symbol` is in the `pct` % share the streams serve during a cutover.

    The bucket comes from sha256 of the symbol, not Python's `hash` (salted per process), so
    every run and every host puts a symbol on the same side, and raising `pct` only ever moves
    symbols from REST to the streams.
    """
    digest = hashlib.sha256(symbol.encode()).digest()
    bucket = int.from_bytes(digest[:8], "big") % _BUCKETS
    return bucket < pct * _BUCKETS / 100


class FeedMode(Enum):
    """Where one scope's data comes from right now."""

    STREAMING = "streaming"
    DEGRADED = "degraded"
    POLLING = "polling"


class FailoverTrigger(Enum):
    SUSPECT = "suspect"
    HEALTHY = "healthy"
    BREACH = "breach"
    RECOVERED = "recovered"


class Condition(Enum):
    """What one observation says about a scope's streams."""

    HEALTHY = "healthy"
    SUSPECT = "suspect"
    BREACH = "breach"


_M = FeedMode
_T = FailoverTrigger

TRANSITIONS: Final[Mapping[tuple[FeedMode, FailoverTrigger], FeedMode]] = {
    (_M.STREAMING, _T.SUSPECT): _M.DEGRADED,
    (_M.STREAMING, _T.BREACH): _M.POLLING,
    (_M.DEGRADED, _T.HEALTHY): _M.STREAMING,
    (_M.DEGRADED, _T.BREACH): _M.POLLING,
    (_M.POLLING, _T.RECOVERED): _M.STREAMING,
}


def transition(mode: FeedMode, trigger: FailoverTrigger) -> FeedMode:
    """The table lookup (`protocol.errors.next_state`, shared by every state machine); raises
    `IllegalTransition` naming the trigger and the mode for a pair the table lacks."""
    return next_state(TRANSITIONS, mode, trigger)


@dataclass(frozen=True, slots=True)
class FailoverConfig:
    """Thresholds in seconds (AppSettings `rollout_*`)."""

    mark_stale_s: float = 5.0
    private_down_s: float = 5.0
    healthy_for_s: float = 30.0
    # Failed subscribes of the private `position` topic before the account polls.
    subscription_failures: int = 5
    # A scope turns DEGRADED (fast polling, no switch yet) at this share of its threshold.
    suspect_fraction: float = 0.5
    # After the first evaluation, a private socket that was never up is still connecting, not
    # down (issue 19 F9). Its outage is still counted from start, so a real one breaches at
    # `private_down_s` as before; the grace stays below it. None: the suspect share of it
    # (2.5 s by default), so it scales with the other thresholds.
    startup_grace_s: float | None = None

    def __post_init__(self) -> None:
        if min(self.mark_stale_s, self.private_down_s, self.healthy_for_s) <= 0:
            raise ValueError("failover thresholds must be positive")
        if not 0 < self.suspect_fraction <= 1:
            raise ValueError("suspect_fraction must be in (0, 1]")
        if not 0 <= self.grace_s < self.private_down_s:
            raise ValueError("startup_grace_s must be in [0, private_down_s)")

    @property
    def grace_s(self) -> float:
        """The start-up grace in seconds (see `startup_grace_s`)."""
        if self.startup_grace_s is None:
            return self.private_down_s * self.suspect_fraction
        return self.startup_grace_s


def quiet_shard_ping_s(config: FailoverConfig) -> float:
    """The public sockets' idle ping (`SessionConfig.idle_ping_s`) these thresholds need: a
    completely quiet shard (Bybit pushes nothing) is known alive only by the pongs to our
    pings, so it must be heard from before a symbol turns SUSPECT. 80 % of the SUSPECT share
    of `mark_stale_s` (2.0 s by default) leaves the rest for the pong's round trip."""
    return config.mark_stale_s * config.suspect_fraction * 0.8


@dataclass(frozen=True, slots=True)
class AccountObservation:
    """The private stream as the shell sees it now."""

    # Connected and the `position` topic confirmed: pushes are flowing.
    private_up: bool
    # Failed subscribes of `position` since it was last confirmed.
    subscription_failures: int = 0
    gave_up: bool = False


@dataclass(frozen=True, slots=True)
class SymbolObservation:
    """One held symbol's ticker: its last sign of life (`heard_at`: a frame of its topic, or any
    frame on its socket; None: never) and when a frame last carried a mark (`mark_at`; None:
    never). `frozen_check` False leaves the mark out of it (only silence counts)."""

    heard_at: float | None
    gave_up: bool = False
    mark_at: float | None = None
    frozen_check: bool = True


@dataclass(frozen=True, slots=True)
class FailoverSwitched:
    """One scope changed mode; `scope` is "account" or a symbol."""

    scope: str
    old: FeedMode
    new: FeedMode
    reason: str
    at: float


@dataclass(slots=True)
class _Scope:
    mode: FeedMode = FeedMode.STREAMING
    reason: str = ""
    since: float = 0.0
    watch_since: float = 0.0
    down_since: float | None = None
    healthy_since: float | None = None
    switches: int = 0
    # Frozen-mark check: when one was last asked for (None: none pending), when the last one
    # was answered or failed, and the REST mark that disagreed (with when it was asked).
    check_asked_at: float | None = None
    checked_at: float = 0.0
    mismatch: tuple[float, str] | None = None


@dataclass(slots=True)
class FailoverStats:
    """Switches into each mode; `to_streaming` counts only returns from POLLING."""

    to_polling: int = 0
    to_streaming: int = 0
    to_degraded: int = 0
    # Frozen marks sampled from REST, and how many of those samples disagreed.
    mark_checks: int = 0
    mark_check_mismatches: int = 0


class Failover:
    """Modes for the account and every held symbol; see the module docstring."""

    def __init__(self, config: FailoverConfig | None = None) -> None:
        self.config = config or FailoverConfig()
        self._account = _Scope()
        self._symbols: dict[str, _Scope] = {}
        self.stats = FailoverStats()
        self._started_at: float | None = None
        self._private_seen = False
        self._checks: list[str] = []

    # --- inputs -----------------------------------------------------------------------------

    def evaluate(
        self,
        now: float,
        account: AccountObservation,
        symbols: Mapping[str, SymbolObservation],
    ) -> list[FailoverSwitched]:
        """Judges every scope at `now`; symbols no longer held are forgotten."""
        switches: list[FailoverSwitched] = []
        self._forget_except(symbols.keys())
        condition, reason = self._account_condition(now, account)
        switches += self._step(ACCOUNT, self._account, condition, reason, now)
        for symbol, observation in sorted(symbols.items()):
            scope = self._symbols.get(symbol)
            if scope is None:
                scope = self._symbols[symbol] = _Scope(since=now, watch_since=now)
            condition, reason = self._symbol_condition(now, symbol, scope, observation)
            switches += self._step(symbol, scope, condition, reason, now)
        return switches

    def take_mark_checks(self) -> list[str]:
        """Symbols whose frozen mark the shell must compare with one REST sample now."""
        checks, self._checks = self._checks, []
        return checks

    def on_mark_check(
        self, symbol: str, now: float, *, rest_mark: Decimal | None, stream_mark: Decimal | None
    ) -> None:
        """The REST sample for a `take_mark_checks` symbol; `rest_mark` None: the call failed
        (retried one stretch later). A disagreeing REST mark breaches at the next evaluation,
        unless a mark frame arrived since the check was asked."""
        scope = self._symbols.get(symbol)
        if scope is None or scope.check_asked_at is None:
            return
        asked_at, scope.check_asked_at, scope.checked_at = scope.check_asked_at, None, now
        self.stats.mark_checks += rest_mark is not None
        if rest_mark is not None and stream_mark is not None and rest_mark != stream_mark:
            self.stats.mark_check_mismatches += 1
            reason = f"{_FROZEN} at {stream_mark} while REST says {rest_mark}"
            scope.mismatch = (asked_at, reason)

    # --- queries ----------------------------------------------------------------------------

    @property
    def account_mode(self) -> FeedMode:
        return self._account.mode

    def symbol_mode(self, symbol: str) -> FeedMode:
        scope = self._symbols.get(symbol)
        return FeedMode.STREAMING if scope is None else scope.mode

    def polls_marks(self, symbol: str) -> bool:
        """The account scope is the private stream (positions), so a symbol's marks go to REST
        only by its own scope: a dead public socket makes every ticker stale anyway."""
        return self.symbol_mode(symbol) is FeedMode.POLLING

    def polls_positions(self) -> bool:
        return self._account.mode is FeedMode.POLLING

    def polling_symbols(self) -> set[str]:
        """Held symbols whose marks REST must serve now."""
        return {s for s in self._symbols if self.polls_marks(s)}

    def frozen_marks(self) -> dict[str, str]:
        """Symbols on REST because REST contradicted their frozen mark, with the reason."""
        return {
            symbol: scope.reason
            for symbol, scope in self._symbols.items()
            if scope.mode is FeedMode.POLLING and scope.reason.startswith(_FROZEN)
        }

    def degraded(self) -> bool:
        """True while any scope is not STREAMING: the poller then runs fast."""
        scopes = (self._account, *self._symbols.values())
        return any(scope.mode is not FeedMode.STREAMING for scope in scopes)

    def status(self, now: float) -> dict[str, object]:
        return {
            "account": self._scope_status(self._account, now),
            "symbols": {s: self._scope_status(v, now) for s, v in sorted(self._symbols.items())},
            "polling_symbols": sorted(self.polling_symbols()),
            "to_polling": self.stats.to_polling,
            "to_streaming": self.stats.to_streaming,
            "mark_checks": self.stats.mark_checks,
            "mark_check_mismatches": self.stats.mark_check_mismatches,
        }

    # --- conditions -------------------------------------------------------------------------

    def _account_condition(self, now: float, obs: AccountObservation) -> tuple[Condition, str]:
        cfg = self.config
        scope = self._account
        if self._started_at is None:
            self._started_at = scope.since = now
        self._private_seen = self._private_seen or obs.private_up
        if obs.private_up:
            scope.down_since = None
        elif scope.down_since is None:
            scope.down_since = now
        if obs.gave_up or obs.subscription_failures >= cfg.subscription_failures:
            return Condition.BREACH, f"position subscription failed {obs.subscription_failures}x"
        if scope.down_since is not None:
            down_s = now - scope.down_since
            if not self._private_seen and now - self._started_at < cfg.grace_s:
                return Condition.HEALTHY, "private stream connecting (start-up grace)"
            if down_s >= cfg.private_down_s:
                return Condition.BREACH, f"private stream down {down_s:.1f}s"
            return Condition.SUSPECT, f"private stream down {down_s:.1f}s"
        if obs.subscription_failures:
            return Condition.SUSPECT, f"position subscription failed {obs.subscription_failures}x"
        return Condition.HEALTHY, "private stream live"

    def _symbol_condition(
        self, now: float, symbol: str, scope: _Scope, obs: SymbolObservation
    ) -> tuple[Condition, str]:
        cfg = self.config
        if obs.gave_up:
            return Condition.BREACH, "ticker subscription failed"
        # A ticker frame from before this symbol was held says nothing about now.
        heard_at = max(obs.heard_at or scope.watch_since, scope.watch_since)
        age_s = now - heard_at
        if age_s >= cfg.mark_stale_s:
            return Condition.BREACH, f"ticker silent {age_s:.1f}s"
        if age_s >= cfg.mark_stale_s * cfg.suspect_fraction:
            return Condition.SUSPECT, f"ticker silent {age_s:.1f}s"
        if obs.frozen_check:
            return self._frozen_condition(now, symbol, scope, obs)
        return Condition.HEALTHY, "ticker live"

    def _frozen_condition(
        self, now: float, symbol: str, scope: _Scope, obs: SymbolObservation
    ) -> tuple[Condition, str]:
        """A live ticker whose mark has not moved: asks for a REST sample, breaches only on a
        disagreeing one (see the module docstring)."""
        mark_at = max(obs.mark_at or scope.watch_since, scope.watch_since)
        if scope.mismatch is not None:
            asked_at, reason = scope.mismatch
            if mark_at < asked_at:
                return Condition.BREACH, reason
            scope.mismatch = None  # the mark moved again since: the ticker is back
        stale_s = self.config.mark_stale_s
        since = max(mark_at, scope.checked_at)
        # A check never answered (its task died) is asked again a stretch later.
        pending = scope.check_asked_at is not None and now - scope.check_asked_at < stale_s
        if now - since >= stale_s and not pending:
            scope.check_asked_at = now
            self._checks.append(symbol)
        return Condition.HEALTHY, "ticker live"

    # --- the machine ------------------------------------------------------------------------

    def _step(
        self, name: str, scope: _Scope, condition: Condition, reason: str, now: float
    ) -> list[FailoverSwitched]:
        trigger = self._trigger(scope, condition, now)
        if trigger is None:
            return []
        old = scope.mode
        scope.mode = transition(old, trigger)
        scope.since = now
        scope.healthy_since = None
        scope.switches += 1
        if trigger is FailoverTrigger.RECOVERED:
            reason = f"streams healthy for {self.config.healthy_for_s:g}s"
        scope.reason = reason
        self._count(old, scope.mode)
        return [FailoverSwitched(name, old, scope.mode, reason, now)]

    def _trigger(self, scope: _Scope, condition: Condition, now: float) -> FailoverTrigger | None:
        """The trigger this condition fires in the scope's mode; None when nothing changes."""
        if scope.mode is FeedMode.POLLING:
            if condition is not Condition.HEALTHY:
                scope.healthy_since = None  # the healthy run must be unbroken
                return None
            if scope.healthy_since is None:
                scope.healthy_since = now
            healthy_s = now - scope.healthy_since
            return FailoverTrigger.RECOVERED if healthy_s >= self.config.healthy_for_s else None
        if condition is Condition.BREACH:
            return FailoverTrigger.BREACH
        if condition is Condition.SUSPECT:
            return FailoverTrigger.SUSPECT if scope.mode is FeedMode.STREAMING else None
        return FailoverTrigger.HEALTHY if scope.mode is FeedMode.DEGRADED else None

    def _count(self, old: FeedMode, mode: FeedMode) -> None:
        stats = self.stats
        if mode is FeedMode.POLLING:
            stats.to_polling += 1
        elif mode is FeedMode.STREAMING:
            # Only the end of a fallback: DEGRADED -> STREAMING (a suspicion that cleared, as
            # before every first ticker) is no switch back (issue 18).
            if old is FeedMode.POLLING:
                stats.to_streaming += 1
        else:
            stats.to_degraded += 1

    def _forget_except(self, held: Iterable[str]) -> None:
        keep = set(held)
        for symbol in [s for s in self._symbols if s not in keep]:
            del self._symbols[symbol]

    def _scope_status(self, scope: _Scope, now: float) -> dict[str, object]:
        return {
            "mode": scope.mode.value,
            "reason": scope.reason,
            "for_s": round(now - scope.since, 3),
            "switches": scope.switches,
        }
