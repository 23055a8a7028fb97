"""When to poll REST and for what: the adaptive interval, rate-limit gates and failure backoff.

The planner reads no clock: every call takes `now` (seconds). Its shell (`rollout/poller.py`)
sleeps until `next_at`, polls, and reports back with `on_success` / `on_failure` /
`on_rate_limited`, passing what the poll must serve (`PollNeeds`).

Interval rules:

- fast (`fast_s`, 1.5 s) while REST drives open positions, serves marks, or any stream scope
  is degraded or polling: that is when a missed change costs money;
- slow (`slow_s`, 10 s) otherwise: flat account, or streams healthy and REST only reconciling;
- `hurry(now)` polls at once (a scope just switched to POLLING), but never before a rate-limit
  gate: after a 10006, or when `X-Bapi-Limit-Status` shows the budget nearly spent, nothing is
  sent before `X-Bapi-Limit-Reset-Timestamp` (BYBIT_V5.md §7.5);
- a failed poll is retried after a growing backoff, never later than the normal interval.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Final

from bybit_hybrid.protocol.backoff import Backoff, BackoffPolicy

# pybit's wait when a 10006 carries no reset timestamp (BYBIT_V5.md §7.5).
DEFAULT_RATE_LIMIT_WAIT_S: Final = 2.0


@dataclass(frozen=True, slots=True)
class PollConfig:
    """Poll timing in seconds; defaults follow AppSettings `rest_poll_*`."""

    fast_s: float = 1.5
    slow_s: float = 10.0
    # Below this share of the per-UID budget left, wait for the window to reset: the trailing
    # stop and order calls share the same UID limit and matter more than one poll.
    limit_reserve_fraction: float = 0.2
    failure_backoff: BackoffPolicy = field(
        default_factory=lambda: BackoffPolicy(initial_s=0.25, factor=2.0, max_s=10.0)
    )

    def __post_init__(self) -> None:
        if not 0 < self.fast_s <= self.slow_s:
            raise ValueError("poll intervals must satisfy 0 < fast_s <= slow_s")
        if not 0 <= self.limit_reserve_fraction < 1:
            raise ValueError("limit_reserve_fraction must be in [0, 1)")


@dataclass(frozen=True, slots=True)
class PollNeeds:
    """What the next poll must serve, from the shell's view of modes and positions."""

    open_positions: int = 0
    # REST is the primary source of position changes (rest/canary/parallel, account POLLING,
    # the REST share of a cutover); otherwise it only reconciles behind the private stream.
    rest_drives: bool = True
    # Some failover scope is DEGRADED or POLLING.
    degraded: bool = False
    # Symbols whose marks REST serves now.
    mark_symbols: frozenset[str] = frozenset()

    @property
    def fast(self) -> bool:
        return (
            self.degraded
            or bool(self.mark_symbols)
            or (self.rest_drives and self.open_positions > 0)
        )


@dataclass(slots=True)
class PlannerStats:
    polls: int = 0
    failures: int = 0
    rate_limited: int = 0
    limit_waits: int = 0
    hurried: int = 0


class PollPlanner:
    """Decides when the next poll happens; see the module docstring."""

    def __init__(self, config: PollConfig | None = None, rng: random.Random | None = None):
        self.config = config or PollConfig()
        self._backoff = Backoff(self.config.failure_backoff, rng)
        self.next_at = float("-inf")  # the first poll is due at once
        self.not_before = float("-inf")
        self._last_at: float | None = None
        self.stats = PlannerStats()

    def interval_s(self, needs: PollNeeds) -> float:
        return self.config.fast_s if needs.fast else self.config.slow_s

    def due(self, now: float) -> bool:
        return now >= self.next_at

    def on_success(self, now: float, needs: PollNeeds) -> float:
        self.stats.polls += 1
        self._backoff.reset()
        self._last_at = now
        return self._schedule(now + self.interval_s(needs))

    def on_failure(self, now: float, needs: PollNeeds) -> float:
        self.stats.failures += 1
        self._last_at = now
        delay_s = min(self._backoff.next_delay(), self.interval_s(needs))
        return self._schedule(now + delay_s)

    def on_rate_limited(self, now: float, reset_at_s: float | None) -> float:
        """A 10006: nothing more before Bybit's window resets."""
        self.stats.rate_limited += 1
        self._last_at = now
        reset_s = reset_at_s if reset_at_s is not None and reset_at_s > now else None
        self.not_before = reset_s if reset_s is not None else now + DEFAULT_RATE_LIMIT_WAIT_S
        return self._schedule(self.not_before)

    def observe_limit(
        self, now: float, limit: int | None, remaining: int | None, reset_at_s: float | None
    ) -> None:
        """`X-Bapi-Limit*` from the last answer: keep a reserve of the UID's budget."""
        if limit is None or remaining is None or reset_at_s is None or reset_at_s <= now:
            return
        if remaining <= limit * self.config.limit_reserve_fraction:
            self.stats.limit_waits += 1
            self.not_before = max(self.not_before, reset_at_s)
            self.next_at = max(self.next_at, reset_at_s)

    def hurry(self, now: float) -> float:
        """Poll as soon as the rate-limit gate allows (a scope just switched to POLLING)."""
        self.stats.hurried += 1
        self.next_at = max(now, self.not_before)
        return self.next_at

    def delay_first(self, now: float, needs: PollNeeds) -> float:
        """The shell bootstrapped at `now`: it counts as a poll, so `reschedule` works at once.

        Without this a private outage in the first slow interval got no fast polling (issue 19 F3).
        """
        self._last_at = now
        return self._schedule(now + self.interval_s(needs))

    def reschedule(self, needs: PollNeeds) -> float:
        """Brings the next poll forward when the needs now call for a shorter interval."""
        if self._last_at is not None:
            sooner = max(self._last_at + self.interval_s(needs), self.not_before)
            self.next_at = min(self.next_at, sooner)
        return self.next_at

    def _schedule(self, at: float) -> float:
        self.next_at = max(at, self.not_before)
        return self.next_at
