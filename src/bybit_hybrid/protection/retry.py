"""Protection retry policy: how long to wait after a failed exchange call, never giving up early.

A stop the exchange does not hold, or a position that must be closed, is retried while the
position is open: giving up would leave it unprotected. What changes with failures is the wait:
exponential up to `max_delay_s`, or until Bybit's rate-limit reset (read on the exchange's clock,
which the REST client estimates with its measured offset).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from bybit_hybrid.wire.retcodes import (
    AuthError,
    BybitApiError,
    BybitError,
    RateLimitedError,
    WrongSideError,
    ZeroPositionError,
)

# order/create's "current position is zero, cannot fix reduce-only order qty".
REDUCE_ONLY_NOTHING_TO_CLOSE: Final = 110017


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential waits: `base_delay_s`·2^n for the first `max_retries`, then `max_delay_s`."""

    max_retries: int = 5
    base_delay_s: float = 0.2
    max_delay_s: float = 5.0

    def __post_init__(self) -> None:
        if self.max_retries < 0 or not 0 < self.base_delay_s <= self.max_delay_s:
            raise ValueError("retry policy needs max_retries >= 0 and 0 < base <= max delay")

    def delay_s(self, exc: BybitError, failures: int, server_now_ms: int | None = None) -> float:
        """Seconds before the next attempt after `failures` failures in a row (the last: exc)."""
        if not is_retryable(exc) or failures >= self.max_retries:
            return self.max_delay_s
        backoff_s = min(self.max_delay_s, self.base_delay_s * float(2**failures))
        reset_at_ms = exc.reset_at_ms if isinstance(exc, RateLimitedError) else None
        if reset_at_ms is not None and server_now_ms is not None:
            until_reset_s = (reset_at_ms - server_now_ms) / 1000
            return min(self.max_delay_s, max(backoff_s, until_reset_s))
        return backoff_s


def is_retryable(exc: BybitError) -> bool:
    """Failures that may heal soon; a bad key or permission waits the longest delay instead."""
    return not isinstance(exc, AuthError)


def is_position_gone(exc: BybitError) -> bool:
    """The exchange says there is nothing to protect or close: 10001 zero position, 110017.

    Only a claim: callers confirm it against the exchange's position list before acting on it.
    """
    if isinstance(exc, ZeroPositionError):
        return True
    return isinstance(exc, BybitApiError) and exc.ret_code == REDUCE_ONLY_NOTHING_TO_CLOSE


def is_wrong_side(exc: BybitError) -> bool:
    """10001 "... should lower/greater than base_price": the price is already through the stop."""
    return isinstance(exc, WrongSideError)
