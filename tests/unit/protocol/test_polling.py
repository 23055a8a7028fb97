"""The poll planner with a manual clock: adaptive interval, hurry, rate-limit gates, backoff."""

from __future__ import annotations

import random

import pytest

from bybit_hybrid.protocol.backoff import BackoffPolicy
from bybit_hybrid.protocol.polling import (
    DEFAULT_RATE_LIMIT_WAIT_S,
    PollConfig,
    PollNeeds,
    PollPlanner,
)

CONFIG = PollConfig(
    fast_s=1.5,
    slow_s=10.0,
    failure_backoff=BackoffPolicy(initial_s=0.25, factor=2.0, max_s=10.0, jitter_ratio=0.0),
)
FLAT = PollNeeds(open_positions=0)
OPEN = PollNeeds(open_positions=2)


def planner() -> PollPlanner:
    return PollPlanner(CONFIG, random.Random(1))


@pytest.mark.parametrize(
    ("needs", "interval_s"),
    [
        (FLAT, 10.0),
        (OPEN, 1.5),
        (PollNeeds(open_positions=0, degraded=True), 1.5),
        # Streams healthy and driving: REST only reconciles, slowly, even with positions.
        (PollNeeds(open_positions=3, rest_drives=False), 10.0),
        (PollNeeds(open_positions=3, rest_drives=False, degraded=True), 1.5),
        (PollNeeds(open_positions=1, rest_drives=False, mark_symbols=frozenset({"BTC"})), 1.5),
    ],
)
def test_the_interval_is_fast_exactly_when_a_miss_costs(
    needs: PollNeeds, interval_s: float
) -> None:
    assert planner().interval_s(needs) == interval_s


def test_first_poll_is_due_at_once_then_every_interval() -> None:
    p = planner()
    assert p.due(0.0)
    assert p.on_success(0.0, OPEN) == 1.5
    assert not p.due(1.49) and p.due(1.5)
    assert p.on_success(1.5, FLAT) == 11.5


def test_reschedule_brings_a_slow_poll_forward_when_the_needs_turn_fast() -> None:
    p = planner()
    p.on_success(0.0, FLAT)
    assert p.next_at == 10.0
    assert p.reschedule(OPEN) == 1.5
    assert p.reschedule(FLAT) == 1.5  # never pushed back by a reschedule


def test_hurry_polls_now() -> None:
    p = planner()
    p.on_success(0.0, FLAT)
    assert p.hurry(3.0) == 3.0 and p.due(3.0)


def test_a_10006_gates_everything_until_the_reset_timestamp() -> None:
    p = planner()
    p.on_success(0.0, OPEN)
    assert p.on_rate_limited(1.5, reset_at_s=4.0) == 4.0
    assert p.hurry(2.0) == 4.0  # even a failover cannot jump the gate
    assert not p.due(3.9) and p.due(4.0)
    assert p.on_success(4.0, OPEN) == 5.5
    assert p.stats.rate_limited == 1


def test_a_10006_without_reset_header_waits_pybits_default() -> None:
    p = planner()
    assert p.on_rate_limited(10.0, reset_at_s=None) == 10.0 + DEFAULT_RATE_LIMIT_WAIT_S
    q = planner()
    assert q.on_rate_limited(10.0, reset_at_s=9.0) == 10.0 + DEFAULT_RATE_LIMIT_WAIT_S


def test_a_nearly_spent_budget_waits_for_the_window_to_reset() -> None:
    p = planner()
    p.on_success(0.0, OPEN)
    p.observe_limit(0.0, limit=50, remaining=30, reset_at_s=1.0)
    assert p.next_at == 1.5  # plenty left
    p.observe_limit(0.0, limit=50, remaining=10, reset_at_s=2.0)
    assert p.next_at == 2.0 and p.stats.limit_waits == 1
    p.observe_limit(0.0, limit=None, remaining=0, reset_at_s=9.0)  # unknown limit: ignored
    assert p.next_at == 2.0


def test_failures_back_off_but_never_beyond_the_interval() -> None:
    p = planner()
    delays = [p.on_failure(t, OPEN) - t for t in (0.0, 10.0, 20.0, 30.0, 40.0)]
    assert delays == [0.25, 0.5, 1.0, 1.5, 1.5]
    p.on_success(50.0, OPEN)
    assert p.on_failure(51.0, OPEN) - 51.0 == 0.25  # success reset the backoff


def test_config_rejects_inverted_intervals() -> None:
    with pytest.raises(ValueError, match="fast_s"):
        PollConfig(fast_s=10.0, slow_s=1.0)


def test_f3_a_delayed_first_poll_is_brought_forward_from_the_first_second() -> None:
    # Issue 19 F3: the stream bootstrapped itself at t=0 and delayed the first poll to the slow
    # interval; a private outage at t=1 turns the needs fast and must poll by t=0+fast_s.
    p = planner()
    p.delay_first(0.0, FLAT)
    assert p.next_at == 10.0
    assert p.reschedule(OPEN) == 1.5
