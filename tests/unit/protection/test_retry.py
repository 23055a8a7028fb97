"""Retry policy and the one-attempt exchange wrapper: no nesting, the server clock, settings."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from bybit_hybrid.errors import ConfigError
from bybit_hybrid.protection.config import trailing_config
from bybit_hybrid.protection.exchange import ProtectionExchange
from bybit_hybrid.protection.limiter import AccountLimiter
from bybit_hybrid.protection.retry import RetryPolicy
from bybit_hybrid.protocol.domain import PositionKey
from bybit_hybrid.service.settings import load_settings
from bybit_hybrid.transport.errors import RateLimitedError, api_error

SERVER_NOW_MS = 1_700_000_000_000


def test_a_rate_limit_waits_for_the_reset_on_the_exchanges_clock() -> None:
    """The local clock may be far off; the reset is compared with the offset-corrected one."""
    exc = RateLimitedError(10006, "Too many visits!", "/x", reset_at_ms=SERVER_NOW_MS + 1_500)
    assert RetryPolicy().delay_s(exc, 0, SERVER_NOW_MS) == pytest.approx(1.5)
    assert RetryPolicy().delay_s(exc, 0, SERVER_NOW_MS + 10_000) == pytest.approx(0.2)


def test_waits_grow_then_stay_at_the_cap_and_never_give_up() -> None:
    policy = RetryPolicy(max_retries=3, base_delay_s=0.5, max_delay_s=3.0)
    exc = api_error("/x", 10000, "Server Timeout")
    assert [policy.delay_s(exc, n) for n in range(6)] == [0.5, 1.0, 2.0, 3.0, 3.0, 3.0]
    auth = api_error("/x", 10005, "Permission denied")
    assert policy.delay_s(auth, 0) == 3.0, "a bad permission is retried slowly, not in a loop"


class RecordingRest:
    def __init__(self) -> None:
        self.kwargs: list[dict[str, Any]] = []

    async def apply_trading_stop(self, request: Any, **kwargs: Any) -> bool:
        self.kwargs.append(kwargs)
        return True


async def test_the_wrapper_makes_one_attempt_so_retries_never_nest() -> None:
    rest = RecordingRest()
    exchange = ProtectionExchange(rest, AccountLimiter())  # type: ignore[arg-type]
    assert await exchange.set_stop(PositionKey("BTCUSDT", 0), Decimal("100.5"))
    assert rest.kwargs == [{"retry": False}]


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"trailing_bypass_improvement_pct": 0}, "trailing_bypass_improvement_pct"),
        (
            {"trailing_min_improvement_pct": "0.5", "trailing_bypass_improvement_pct": "0.2"},
            "trailing_bypass_improvement_pct",
        ),
    ],
)
def test_bypass_below_the_minimum_or_zero_is_refused(overrides: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        trailing_config(load_settings(overrides=overrides))
