"""Per-account request limiter for protection calls: at most N per rolling window, per endpoint.

Bybit counts signed requests per UID over a rolling one-second window (BYBIT_V5.md §7.5), so
a token bucket with a burst is not enough: ten at once plus one every 100 ms would put 19 in a
window. The window logic is the REST client's own (`protocol.ratelimit.RollingWindow`, one
implementation for the product); this wraps it with the waiting, shared by trailing and aged.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Final

from bybit_hybrid.protocol.ratelimit import WINDOW_MARGIN_S, WINDOW_S, RollingWindow
from bybit_hybrid.wire.paths import ORDER_CREATE, POSITION_LIST, TRADING_STOP

DEFAULT_PROTECTION_LIMITS: Final[Mapping[str, int]] = {
    TRADING_STOP: 10,
    ORDER_CREATE: 10,
    POSITION_LIST: 50,
}

__all__ = ["DEFAULT_PROTECTION_LIMITS", "AccountLimiter", "RollingWindow"]


class AccountLimiter:
    """One rolling window per endpoint, shared by every protection component of one account."""

    def __init__(
        self,
        limits: Mapping[str, int] = DEFAULT_PROTECTION_LIMITS,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        window_s = WINDOW_S + WINDOW_MARGIN_S
        self._windows = {path: RollingWindow(limit, window_s) for path, limit in limits.items()}
        self._clock = clock
        self._sleep = sleep
        self.waits = 0

    async def acquire(self, endpoint: str) -> None:
        window = self._windows.get(endpoint)
        if window is None:
            return
        wait_s = window.reserve(self._clock())
        if wait_s > 0:
            self.waits += 1
            await self._sleep(wait_s)
