"""Pure helpers of the server shell: rate windows, max_active_time parsing, fault bookkeeping."""

from __future__ import annotations

import pytest

from bybit_hybrid.sim.faults import ConnKind, FaultState, RestErrorMode, Target
from bybit_hybrid.sim.frames import private_pong, private_reply, public_pong
from bybit_hybrid.sim.ratelimit import RollingLimiter
from bybit_hybrid.sim.server import SimConfig, parse_max_active_time


def test_rolling_window_limits_and_headers() -> None:
    limiter = RollingLimiter({"/x": 3})
    decisions = [limiter.hit("k", "/x", 1000 + i) for i in range(4)]
    assert [d.allowed for d in decisions if d] == [True, True, True, False]
    refused = decisions[3]
    assert refused is not None
    assert refused.headers() == {
        "X-Bapi-Limit": "3",
        "X-Bapi-Limit-Status": "0",
        "X-Bapi-Limit-Reset-Timestamp": "2000",
    }
    again = limiter.hit("k", "/x", 2000)
    assert again is not None
    assert again.allowed
    assert again.remaining == 0
    assert limiter.hit("k", "/unlimited", 0) is None
    other_key = limiter.hit("other", "/x", 1001)
    assert other_key is not None
    assert other_key.allowed


@pytest.mark.parametrize(("raw", "seconds"), [("30s", 30), ("45s", 45), ("2m", 120), ("10m", 600)])
def test_max_active_time_accepted(raw: str, seconds: float) -> None:
    assert parse_max_active_time(raw) == seconds


@pytest.mark.parametrize("raw", ["29s", "601s", "11m", "1h", "abc", "", "-5s"])
def test_max_active_time_rejected(raw: str) -> None:
    with pytest.raises(ValueError, match="max_active_time"):
        parse_max_active_time(raw)


def test_fault_state_counts_and_windows() -> None:
    state = FaultState(reject_auth_count=2)
    assert [state.take_auth_rejection(0.0) for _ in range(3)] == [True, True, False]
    state.reject_auth_until_s = 10.0
    assert state.take_auth_rejection(9.9)
    assert not state.take_auth_rejection(10.0)
    state.rest_error_mode, state.rest_error_count = RestErrorMode.RATE_LIMIT, 1
    assert state.take_rest_error("/v5/market/tickers", signed=False) is None
    assert state.take_rest_error("/v5/position/list", signed=True) is RestErrorMode.RATE_LIMIT
    assert state.take_rest_error("/v5/position/list", signed=True) is None
    assert Target.ALL.matches(ConnKind.PUBLIC)
    assert not Target.PRIVATE.matches(ConnKind.PUBLIC)


def test_reply_shapes() -> None:
    assert public_pong("c", None) == (
        '{"success":true,"ret_msg":"pong","conn_id":"c","req_id":"","op":"ping"}'
    )
    assert private_pong("c", None, 5) == '{"op":"pong","args":["5"],"conn_id":"c"}'
    assert private_pong("c", "r", 5) == '{"req_id":"r","op":"pong","args":["5"],"conn_id":"c"}'
    assert private_reply("c", "auth", None, True) == (
        '{"success":true,"ret_msg":"","op":"auth","conn_id":"c"}'
    )


def test_config_validation_and_secret_not_in_repr() -> None:
    config = SimConfig(api_secret="topsecretvalue")
    assert "topsecretvalue" not in repr(config)
    for bad in ({"symbols": 0}, {"positions": 11}, {"rate_hz": 0}, {"scenario": "nope"}):
        with pytest.raises(ValueError):
            SimConfig(**bad)
