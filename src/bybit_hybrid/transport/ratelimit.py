"""REST rate limits, re-exported for the imports of this module: the logic is pure and lives in
`protocol.ratelimit`, the endpoint names in `wire.paths`."""

from __future__ import annotations

from bybit_hybrid.protocol.ratelimit import (
    DEFAULT_LIMITS_PER_S,
    WINDOW_MARGIN_S,
    WINDOW_S,
    EndpointLimiter,
    RateLimitStatus,
    RollingWindow,
    parse_limit_headers,
)
from bybit_hybrid.wire.paths import (
    ORDER_CREATE,
    POSITION_LIST,
    TRADING_STOP,
)

__all__ = [
    "DEFAULT_LIMITS_PER_S",
    "ORDER_CREATE",
    "POSITION_LIST",
    "TRADING_STOP",
    "WINDOW_MARGIN_S",
    "WINDOW_S",
    "EndpointLimiter",
    "RateLimitStatus",
    "RollingWindow",
    "parse_limit_headers",
]
