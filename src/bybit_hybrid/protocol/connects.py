"""The shared WebSocket connection budget: fast reconnects that stay under Bybit's per-IP limit.

Bybit allows 500 new WebSocket connections per 5 minutes per IP (BYBIT_V5.md §4.3), across every
socket a process (or a machine) opens. Each socket's own backoff is short (at most a few
seconds: after an outage of any length the sockets must be LIVE again within seconds of the
exchange accepting connections), so the bound comes from this budget, shared by all sockets:

- **window**: at most `limit` connection attempts in any `window_s` (450 in 300 s by default,
  50 under Bybit's figure for other clients on the same IP). An attempt is refused a time
  earlier than `attempts[-limit] + window_s`, so the bound holds whatever the backoffs say.
- **outage pacing**: while no socket is connected, the attempts of all sockets together are
  spaced `outage_interval_s` apart (1 s: 300 per window at most), so a long outage never uses
  up the window and a recovery still has room for every socket at once.
- **recovery**: when one socket opens after a failed attempt, the exchange is accepting again;
  the others stop waiting (`HybridCore` moves their reconnect times to now), subject only to
  the window.

Pure: times are handed in (seconds, the caller's clock), nothing is read or awaited.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ConnectBudgetConfig:
    limit: int = 450
    window_s: float = 300.0
    outage_interval_s: float = 1.0

    def __post_init__(self) -> None:
        if self.limit < 1 or self.window_s <= 0 or self.outage_interval_s < 0:
            raise ValueError(
                "connect budget needs limit >= 1, window_s > 0, outage_interval_s >= 0"
            )


class ConnectBudget:
    """Remembers the last `limit` attempts; says when the next one may start."""

    def __init__(self, config: ConnectBudgetConfig | None = None) -> None:
        self.config = config or ConnectBudgetConfig()
        self._attempts: deque[float] = deque(maxlen=self.config.limit)
        self.attempts_total = 0
        self.deferred_total = 0  # attempts that had to wait for the budget

    def next_allowed_at(self, *, outage: bool) -> float:
        """The earliest time an attempt may start (-inf: any time)."""
        at = -math.inf
        attempts = self._attempts
        if len(attempts) == self.config.limit:
            at = attempts[0] + self.config.window_s  # the oldest of the last `limit`
        if outage and attempts:
            at = max(at, attempts[-1] + self.config.outage_interval_s)
        return at

    def record(self, now: float, *, waited: bool = False) -> None:
        """An attempt starts now (the caller has checked `next_allowed_at`)."""
        self._attempts.append(now)
        self.attempts_total += 1
        self.deferred_total += waited

    def in_window(self, now: float) -> int:
        """Attempts within the last `window_s` (for status and tests)."""
        start = now - self.config.window_s
        return sum(1 for at in self._attempts if at > start)
