"""Reconnect delays: exponential growth, bounded jitter from an injected RNG, reset when healthy.

Defaults: 0.5 s, ×2 per failure, capped at 30 s, each delay drawn from [50 %, 100 %] of its
ceiling. The jitter keeps a floor on purpose: "full" jitter (ratio 1.0) can draw ~0 s, which
turns a persistent failure into a near-tight loop; it is allowed but voids the rate bound below.

Rate bound. `worst_case_connects(policy, 300)` is what one socket that fails instantly every
time can do in 5 minutes (25 with these defaults). WebSocket reconnects use a short cap (3 s,
`session_config.RECONNECT_MAX_S`, so a socket is back within seconds after an outage) and are
bounded across all sockets by the shared budget of `protocol/connects.py`, not by the backoff.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    """The shape of the delay sequence; validated so a bad setting fails at construction."""

    initial_s: float = 0.5
    factor: float = 2.0
    max_s: float = 30.0
    jitter_ratio: float = 0.5

    def __post_init__(self) -> None:
        if self.initial_s <= 0:
            raise ValueError(f"backoff initial_s must be > 0, got {self.initial_s}")
        if self.factor < 1:
            raise ValueError(f"backoff factor must be >= 1, got {self.factor}")
        if self.max_s < self.initial_s:
            raise ValueError(f"backoff max_s ({self.max_s}) must be >= initial_s")
        if not 0 <= self.jitter_ratio <= 1:
            raise ValueError(f"backoff jitter_ratio must be in [0, 1], got {self.jitter_ratio}")

    def ceiling_s(self, failures: int) -> float:
        """The largest delay after `failures` consecutive failures (0 = the first delay)."""
        ceiling = self.initial_s
        for _ in range(failures):
            if ceiling >= self.max_s:
                break
            ceiling *= self.factor
        return min(ceiling, self.max_s)

    def floor_s(self, failures: int) -> float:
        """The smallest delay jitter can draw after `failures` consecutive failures."""
        return self.ceiling_s(failures) * (1 - self.jitter_ratio)


class Backoff:
    """Stateful delay generator: `next_delay()` after each failure, `reset()` once healthy."""

    def __init__(self, policy: BackoffPolicy | None = None, rng: random.Random | None = None):
        self.policy = policy or BackoffPolicy()
        # Seeded from the OS when not injected; tests pass `random.Random(seed)`.
        self._rng = rng or random.Random()
        self._failures = 0

    @property
    def failures(self) -> int:
        """Consecutive delays handed out since the last reset."""
        return self._failures

    def next_delay(self) -> float:
        """The delay before the next attempt; each call escalates the following one."""
        ceiling = self.policy.ceiling_s(self._failures)
        self._failures += 1
        return ceiling * (1 - self.policy.jitter_ratio * self._rng.random())

    def reset(self) -> None:
        self._failures = 0


def worst_case_connects(policy: BackoffPolicy, window_s: float) -> int:
    """Connection attempts one socket can make in `window_s` if every attempt fails at once.

    Jitter is assumed to draw its floor every time, so this is an upper bound. With full jitter
    (floor 0) there is no bound and ValueError is raised.
    """
    if policy.jitter_ratio >= 1:
        raise ValueError("full jitter (ratio 1.0) has no worst-case bound")
    attempts, elapsed_s = 1, 0.0  # the first attempt is immediate
    while True:
        elapsed_s += policy.floor_s(attempts - 1)
        if elapsed_s > window_s:
            return attempts
        attempts += 1
