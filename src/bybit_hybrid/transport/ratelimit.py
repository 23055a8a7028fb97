"""Rate-limit bookkeeping for REST: Bybit's `X-Bapi-Limit-*` headers and a client-side token bucket.

Pure logic: time comes in as an argument, so tests drive it with a manual clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

POSITION_LIST: Final = "/v5/position/list"
TRADING_STOP: Final = "/v5/position/trading-stop"
ORDER_CREATE: Final = "/v5/order/create"

# Bybit's per-UID limits (BYBIT_V5.md §7.2, §7.3; D-rate), in requests per second.
DEFAULT_LIMITS_PER_S: Final[Mapping[str, float]] = {
    POSITION_LIST: 50.0,
    TRADING_STOP: 10.0,
    ORDER_CREATE: 10.0,
}


@dataclass(frozen=True, slots=True)
class RateLimitStatus:
    """What Bybit last said about one endpoint's limit (absent headers are None)."""

    limit: int | None
    remaining: int | None
    reset_at_ms: int | None
    observed_at_ms: int


def _int_or_none(value: str | None) -> int | None:
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
        limit=_int_or_none(limit),
        remaining=_int_or_none(remaining),
        reset_at_ms=_int_or_none(reset_at),
        observed_at_ms=now_ms,
    )


class TokenBucket:
    """Allows `rate_per_s` requests per second with bursts of up to `burst` requests.

    `reserve` always grants the request and says how long to wait first; a waiting
    request borrows its token, so concurrent callers queue up fairly instead of all
    waking at once.
    """

    __slots__ = ("_burst", "_rate_per_s", "_tokens", "_updated_s")

    def __init__(self, rate_per_s: float, burst: float | None = None) -> None:
        if rate_per_s <= 0:
            raise ValueError("rate_per_s must be positive")
        self._rate_per_s = rate_per_s
        self._burst = burst if burst is not None else rate_per_s
        self._tokens = self._burst
        self._updated_s: float | None = None

    def reserve(self, now_s: float) -> float:
        """Takes one token; returns the seconds to wait before sending (0 when free)."""
        if self._updated_s is not None:
            elapsed_s = max(0.0, now_s - self._updated_s)
            self._tokens = min(self._burst, self._tokens + elapsed_s * self._rate_per_s)
        self._updated_s = now_s
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self._rate_per_s


class EndpointLimiter:
    """One token bucket per endpoint path; endpoints without a limit pass freely."""

    def __init__(self, limits_per_s: Mapping[str, float]) -> None:
        self._buckets = {path: TokenBucket(rate) for path, rate in limits_per_s.items()}

    def reserve(self, endpoint: str, now_s: float) -> float:
        bucket = self._buckets.get(endpoint)
        return 0.0 if bucket is None else bucket.reserve(now_s)
