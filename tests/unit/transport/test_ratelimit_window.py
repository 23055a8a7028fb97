"""The REST limiter never lets more than the limit into any rolling window (Bybit §7.5).

Regression: the old token bucket started full and refilled at N/s, so a burst of N followed
by steady traffic put close to 2N requests into one rolling second.
"""

from __future__ import annotations

import bisect
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bybit_hybrid.transport.ratelimit import EndpointLimiter, RollingWindow

# Send times are `now + wait`, which may differ from the limiter's own slot by float rounding.
ULP_SLACK_S = 1e-9


def _max_in_any_window(grants: list[float], window_s: float) -> int:
    """The most grants in any half-open window [g, g + window_s) starting at a grant (the
    busiest window always starts at some grant)."""
    ordered = sorted(grants)
    return max(
        (
            bisect.bisect_left(ordered, g + window_s - ULP_SLACK_S) - i
            for i, g in enumerate(ordered)
        ),
        default=0,
    )


# Manual clock: nondecreasing call times built from small steps, often zero (bursts).
steps = st.lists(
    st.one_of(st.just(0.0), st.floats(min_value=0.0, max_value=1.5, allow_nan=False)),
    min_size=1,
    max_size=200,
)


@settings(max_examples=300, deadline=None)
@given(limit=st.integers(min_value=1, max_value=20), steps=steps)
def test_no_rolling_window_ever_holds_more_than_the_limit(limit: int, steps: list[float]) -> None:
    window = RollingWindow(limit)
    now = 0.0
    grants: list[float] = []
    for step in steps:
        now += step
        wait = window.reserve(now)
        assert wait >= 0.0
        grants.append(now + wait)
    assert _max_in_any_window(grants, 1.0) <= limit
    # Grants are handed out in call order (fair queueing).
    assert all(b >= a - ULP_SLACK_S for a, b in itertools.pairwise(grants))


@settings(max_examples=200, deadline=None)
@given(limit=st.integers(min_value=1, max_value=20), steps=steps)
def test_no_request_waits_longer_than_needed(limit: int, steps: list[float]) -> None:
    """Work-conserving: a request waits only when `limit` earlier grants sit in the window
    ending at its grant time, or to stay behind an earlier waiter."""
    window = RollingWindow(limit)
    now = 0.0
    grants: list[float] = []
    for step in steps:
        now += step
        at = now + window.reserve(now)
        if at > now:
            earlier_waiter = bool(grants) and abs(grants[-1] - at) <= ULP_SLACK_S
            in_window = [g for g in grants if g > at - 1.0 - ULP_SLACK_S]
            assert earlier_waiter or len(in_window) >= limit
        grants.append(at)


def test_burst_then_steady_traffic_stays_under_the_limit() -> None:
    """The old bucket's failure case: 10 at once, then one every 100 ms."""
    window = RollingWindow(10)
    grants = [0.0 + window.reserve(0.0) for _ in range(10)]
    grants += [t / 10 + window.reserve(t / 10) for t in range(1, 20)]
    assert _max_in_any_window(grants, 1.0) == 10
    assert grants[10] == pytest.approx(1.0)


@settings(max_examples=200, deadline=None)
@given(limit=st.integers(min_value=1, max_value=20), steps=steps)
def test_the_rest_limiter_keeps_a_jitter_margin(limit: int, steps: list[float]) -> None:
    """The REST client's limiter: even sends jittered by up to 50 ms stay within the limit."""
    limiter = EndpointLimiter({"/v5/x": float(limit)})
    now = 0.0
    grants: list[float] = []
    for step in steps:
        now += step
        grants.append(now + limiter.reserve("/v5/x", now))
    assert _max_in_any_window(grants, 1.05) <= limit


def test_endpoint_limiter_uses_the_whole_number_limit() -> None:
    limiter = EndpointLimiter({"/v5/x": 2.5})
    assert limiter.reserve("/v5/x", 0.0) == 0.0
    assert limiter.reserve("/v5/x", 0.0) == 0.0
    assert limiter.reserve("/v5/x", 0.0) == pytest.approx(1.05)  # window + jitter margin
    with pytest.raises(ValueError):
        EndpointLimiter({"/v5/x": 0})
    with pytest.raises(ValueError):
        RollingWindow(0)
