"""Protection retry policy: which exchange failures to retry, and how long to wait."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Final

from bybit_hybrid.transport.errors import (
    AuthError,
    BybitApiError,
    BybitError,
    RateLimitedError,
    ZeroPositionError,
)

# order/create's "current position is zero, cannot fix reduce-only order qty".
REDUCE_ONLY_NOTHING_TO_CLOSE: Final = 110017


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Attempts after the first, and an exponential delay; a 10006 waits for the limit reset."""

    max_retries: int = 5
    base_delay_s: float = 0.2
    max_delay_s: float = 5.0

    def delay_s(self, exc: BybitError, retries_done: int) -> float | None:
        """Seconds before the next attempt, or None to give up on this one."""
        if retries_done >= self.max_retries or not is_retryable(exc):
            return None
        backoff_s = min(self.max_delay_s, self.base_delay_s * float(2**retries_done))
        if isinstance(exc, RateLimitedError) and exc.reset_at_ms is not None:
            until_reset_s = exc.reset_at_ms / 1000 - time.time()
            return min(self.max_delay_s, max(backoff_s, until_reset_s))
        return backoff_s


def is_retryable(exc: BybitError) -> bool:
    """Everything but a bad key and a position that is gone: those will not heal by waiting."""
    return not isinstance(exc, AuthError) and not is_position_gone(exc)


def is_position_gone(exc: BybitError) -> bool:
    """10001 zero position (trading-stop) or 110017 nothing to reduce (order/create)."""
    if isinstance(exc, ZeroPositionError):
        return True
    return isinstance(exc, BybitApiError) and exc.ret_code == REDUCE_ONLY_NOTHING_TO_CLOSE
