"""Helpers for REST client unit tests: a manual clock, documented credentials, canned bodies."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from bybit_hybrid.transport.http import MockBackend
from bybit_hybrid.transport.rest import BybitRestClient
from bybit_hybrid.wire.signing import Credentials

KEY, SECRET = "test_api_key", "test_secret"
BASE_URL = "https://api.bybit.com"
T0_S = 1_700_000_000.0  # local clock start: timestamp header 1700000000000
F16_CURSOR = "BTCUSDT%3A0%2CBTCUSDT%3A0"


class ManualTime:
    """An injected clock and sleep: sleeping records the duration and advances the clock."""

    def __init__(self, now_s: float = T0_S) -> None:
        self.now_s = now_s
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now_s

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now_s += seconds


def make_client(
    backend: MockBackend,
    manual: ManualTime | None = None,
    *,
    key: str = KEY,
    secret: str = SECRET,
    **options: Any,
) -> BybitRestClient:
    manual = manual or ManualTime()
    return BybitRestClient(
        BASE_URL,
        Credentials(key, secret),
        backend=backend,
        clock=manual.clock,
        sleep=manual.sleep,
        **options,
    )


def hmac_hex(secret: str, payload: str) -> str:
    """Independent of the code under test: HMAC-SHA256 hex of `payload`."""
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def position_row(symbol: str = "BTCUSDT", idx: int = 0, **fields: Any) -> dict[str, Any]:
    """A `position/list` row in F16's shape (avgPrice, no category)."""
    row: dict[str, Any] = {
        "positionIdx": idx,
        "symbol": symbol,
        "side": "Buy",
        "size": "0.01",
        "avgPrice": "65000",
        "markPrice": "65120.5",
        "leverage": "10",
        "takeProfit": "0",
        "stopLoss": "63700",
        "trailingStop": "0",
        "unrealisedPnl": "1.205",
        "cumRealisedPnl": "-25.06579337",
        "liqPrice": "58823.4",
        "positionStatus": "Normal",
        "seq": 325852190774,
        "createdTime": "1694402496913",
        "updatedTime": "1762199126015",
        "openTime": 1762199125980,
    }
    row.update(fields)
    return row


def position_list(rows: list[dict[str, Any]], cursor: str = "") -> dict[str, Any]:
    return {"list": rows, "nextPageCursor": cursor, "category": "linear"}


def server_time(time_ms: int) -> dict[str, Any]:
    return {"timeSecond": str(time_ms // 1000), "timeNano": str(time_ms * 1_000_000)}
