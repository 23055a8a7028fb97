"""Per-UID, per-endpoint rolling one-second request limits, as Bybit applies to signed calls."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

WINDOW_MS: Final = 1000
DEFAULT_LIMITS_PER_S: Final[Mapping[str, int]] = {
    "/v5/position/list": 50,
    "/v5/position/trading-stop": 10,
    "/v5/order/create": 10,
}


@dataclass(frozen=True, slots=True)
class LimitDecision:
    """Outcome of one request against its window, with the values for the X-Bapi-* headers."""

    allowed: bool
    limit: int
    remaining: int
    reset_ms: int

    def headers(self) -> dict[str, str]:
        return {
            "X-Bapi-Limit": str(self.limit),
            "X-Bapi-Limit-Status": str(self.remaining),
            "X-Bapi-Limit-Reset-Timestamp": str(self.reset_ms),
        }


class RollingLimiter:
    """Counts accepted requests per (api key, path) over the last WINDOW_MS."""

    def __init__(self, limits_per_s: Mapping[str, int] = DEFAULT_LIMITS_PER_S) -> None:
        self._limits = dict(limits_per_s)
        self._hits: dict[tuple[str, str], deque[int]] = {}

    def limit_for(self, path: str) -> int | None:
        return self._limits.get(path)

    def hit(self, api_key: str, path: str, now_ms: int) -> LimitDecision | None:
        """Records a request if it fits; None when `path` has no limit."""
        limit = self._limits.get(path)
        if limit is None:
            return None
        hits = self._hits.setdefault((api_key, path), deque())
        while hits and hits[0] <= now_ms - WINDOW_MS:
            hits.popleft()
        if len(hits) >= limit:
            return LimitDecision(False, limit, 0, hits[0] + WINDOW_MS)
        hits.append(now_ms)
        return LimitDecision(True, limit, limit - len(hits), now_ms)
