"""Per-account request limiter for protection calls: at most N per rolling window, per endpoint.

Bybit counts signed requests per UID over a rolling one-second window (BYBIT_V5.md §7.5), so
a token bucket with a burst is not enough: ten at once plus one every 100 ms would put 19 in a
window. This grants a slot only when fewer than `limit` slots fall in the window before it.
The window carries a small margin because the exchange sees our sends a little jittered.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Final

from bybit_hybrid.transport.ratelimit import ORDER_CREATE, POSITION_LIST, TRADING_STOP

DEFAULT_PROTECTION_LIMITS: Final[Mapping[str, int]] = {
    TRADING_STOP: 10,
    ORDER_CREATE: 10,
    POSITION_LIST: 50,
}
WINDOW_S: Final = 1.0
WINDOW_MARGIN_S: Final = 0.05


class RollingWindow:
    """Pure part: `reserve(now)` books the earliest allowed slot and returns the wait."""

    def __init__(self, limit: int, window_s: float = WINDOW_S + WINDOW_MARGIN_S) -> None:
        if limit < 1:
            raise ValueError("limit must be >= 1")
        self.limit = limit
        self.window_s = window_s
        self._granted: deque[float] = deque()

    def reserve(self, now_s: float) -> float:
        granted = self._granted
        while granted and granted[0] <= now_s - self.window_s:
            granted.popleft()
        at_s = now_s
        if len(granted) >= self.limit:
            at_s = max(now_s, granted[-self.limit] + self.window_s)
        granted.append(at_s)
        return at_s - now_s


class AccountLimiter:
    """One rolling window per endpoint, shared by every protection component of one account."""

    def __init__(
        self,
        limits: Mapping[str, int] = DEFAULT_PROTECTION_LIMITS,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._windows = {path: RollingWindow(limit) for path, limit in limits.items()}
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
