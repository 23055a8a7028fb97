"""REST rate limits: Bybit's `X-Bapi-Limit-*` headers and the rolling-window limiter (one, shared by
the REST client and protection).

Pure logic: time comes in as an argument, so tests drive it with a manual clock.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from bybit_hybrid.wire.paths import ORDER_CREATE, POSITION_LIST, TRADING_STOP

# Bybit's per-UID limits (BYBIT_V5.md §7.2, §7.3; D-rate), in requests per second.
DEFAULT_LIMITS_PER_S: Final[Mapping[str, float]] = {
    POSITION_LIST: 50.0,
    TRADING_STOP: 10.0,
    ORDER_CREATE: 10.0,
}
# Bybit counts requests over a rolling window of this length (BYBIT_V5.md §7.5).
WINDOW_S: Final = 1.0
# The client's window is this much longer: sends reach Bybit a little jittered (network,
# timer wake-ups), so two sends exactly WINDOW_S apart could land inside one of its windows.
WINDOW_MARGIN_S: Final = 0.05


@dataclass(frozen=True, slots=True)
class RateLimitStatus:
    """What Bybit last said about one endpoint's limit (absent headers are None)."""

    limit: int | None
    remaining: int | None
    reset_at_ms: int | None
    observed_at_ms: int


def int_or_none(value: str | None) -> int | None:
    """A header's integer, None when absent or not a number (Bybit's headers are text)."""
    if value is None:
        return None
    try:
        return int(value.strip())
    except ValueError:
        return None


def parse_limit_headers(
    limit: str | None, remaining: str | None, reset_at: str | None, now_ms: int
) -> RateLimitStatus | None:
    """The status from the three headers, or None when Bybit sent none (public endpoints)."""
    if limit is None and remaining is None and reset_at is None:
        return None
    return RateLimitStatus(
        limit=int_or_none(limit),
        remaining=int_or_none(remaining),
        reset_at_ms=int_or_none(reset_at),
        observed_at_ms=now_ms,
    )


class RollingWindow:
    """At most `limit` grants in any rolling window of `window_s` (Bybit counts a rolling 1 s).

    A token bucket that starts full lets a burst of N through and then refills at N/s, so
    close to 2N requests can land inside one rolling second. This instead grants a slot only
    once the `limit`-th previous grant has left the window: for every grant g, the half-open
    window [g, g + window_s) holds at most `limit` grants.

    `reserve` always grants the request and says how long to wait first; grants are handed out
    in call order (a waiting request books its slot), so concurrent callers queue up fairly.
    Pure: time comes in as an argument.
    """

    __slots__ = ("_granted", "limit", "window_s")

    def __init__(self, limit: int, window_s: float = WINDOW_S) -> None:
        if limit < 1:
            raise ValueError("limit must be >= 1")
        if window_s <= 0:
            raise ValueError("window_s must be positive")
        self.limit = limit
        self.window_s = window_s
        # Only the last `limit` grants matter: they are sorted, so the oldest bounds the next.
        self._granted: deque[float] = deque(maxlen=limit)

    def reserve(self, now_s: float) -> float:
        """Books the earliest allowed slot at or after `now_s`; returns the wait (0 when free)."""
        granted = self._granted
        at_s = max(now_s, self.free_at())
        if granted:
            at_s = max(at_s, granted[-1])
        granted.append(at_s)
        return at_s - now_s

    def free_at(self) -> float:
        """The earliest time the window has room for one more grant (-inf: it has room now)."""
        granted = self._granted
        return granted[0] + self.window_s if len(granted) == self.limit else -math.inf

    def record(self, at_s: float) -> None:
        """A grant taken at `at_s` without `reserve` (the caller checked `free_at`)."""
        self._granted.append(at_s)


class EndpointLimiter:
    """One rolling window per endpoint path; endpoints without a limit pass freely.

    A limit of `rate` per second allows `floor(rate)` requests (at least 1) per rolling
    `window_s` (one second plus a margin for jitter).
    """

    def __init__(
        self, limits_per_s: Mapping[str, float], window_s: float = WINDOW_S + WINDOW_MARGIN_S
    ) -> None:
        for path, rate in limits_per_s.items():
            if rate <= 0:
                raise ValueError(f"rate limit for {path} must be positive, got {rate}")
        self._buckets = {
            path: RollingWindow(max(1, math.floor(rate)), window_s)
            for path, rate in limits_per_s.items()
        }

    def reserve(self, endpoint: str, now_s: float) -> float:
        bucket = self._buckets.get(endpoint)
        return 0.0 if bucket is None else bucket.reserve(now_s)
