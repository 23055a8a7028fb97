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

from dataclasses import dataclass

from bybit_hybrid.protocol.ratelimit import RollingWindow


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
    """The window is the REST limiter's own rolling window; outage pacing sits on top."""

    def __init__(self, config: ConnectBudgetConfig | None = None) -> None:
        self.config = config or ConnectBudgetConfig()
        self._window = RollingWindow(self.config.limit, self.config.window_s)
        self._last_at: float | None = None
        self.attempts_total = 0

    def next_allowed_at(self, *, outage: bool) -> float:
        """The earliest time an attempt may start (-inf: any time)."""
        at = self._window.free_at()
        if outage and self._last_at is not None:
            at = max(at, self._last_at + self.config.outage_interval_s)
        return at

    def record(self, now: float) -> None:
        """An attempt starts now (the caller has checked `next_allowed_at`)."""
        self._window.record(now)
        self._last_at = now
        self.attempts_total += 1
