"""Backoff: growth, cap, jitter bounds, reset, and the worst case against Bybit's limit."""

from __future__ import annotations

import random

import pytest

from bybit_hybrid.protocol.backoff import Backoff, BackoffPolicy, worst_case_connects
from bybit_hybrid.protocol.session import ConnectionSession, SessionConfig
from bybit_hybrid.protocol.subscriptions import SubscriptionSet
from tests.unit.protocol.session_helpers import T0

BYBIT_NEW_CONNECTIONS_PER_5_MIN = 500  # per WebSocket domain, BYBIT_V5.md §4.3


class FloorRandom(random.Random):
    """Jitter that always draws its floor: the adversarial case for the rate bound."""

    def random(self) -> float:
        return 1.0 - 1e-12


def test_delays_grow_exponentially_to_the_cap() -> None:
    backoff = Backoff(BackoffPolicy(jitter_ratio=0.0))
    delays = [backoff.next_delay() for _ in range(9)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    assert backoff.failures == 9


def test_bounded_jitter_stays_between_floor_and_ceiling() -> None:
    policy = BackoffPolicy()  # jitter_ratio 0.5
    backoff = Backoff(policy, random.Random(42))
    for failures in range(20):
        delay = backoff.next_delay()
        assert policy.floor_s(failures) <= delay <= policy.ceiling_s(failures)
        assert delay >= 0.25


def test_jitter_is_reproducible_from_the_injected_rng() -> None:
    first = [Backoff(rng=random.Random(3)).next_delay() for _ in range(3)]
    again = [Backoff(rng=random.Random(3)).next_delay() for _ in range(3)]
    assert first == again
    a, b = Backoff(rng=random.Random(3)), Backoff(rng=random.Random(4))
    assert [a.next_delay() for _ in range(5)] != [b.next_delay() for _ in range(5)]


def test_full_jitter_can_draw_anything_up_to_the_ceiling() -> None:
    backoff = Backoff(BackoffPolicy(jitter_ratio=1.0), random.Random(1))
    delays = [backoff.next_delay() for _ in range(50)]
    assert all(0 <= d <= 30 for d in delays)
    assert min(delays) < 0.25  # below the bounded floor: why it is not the default


def test_reset_starts_over() -> None:
    backoff = Backoff(BackoffPolicy(jitter_ratio=0.0))
    for _ in range(5):
        backoff.next_delay()
    backoff.reset()
    assert backoff.failures == 0
    assert backoff.next_delay() == 0.5


def test_the_ceiling_does_not_overflow_after_many_failures() -> None:
    assert BackoffPolicy().ceiling_s(100_000) == 30.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"initial_s": 0}, "initial_s"),
        ({"factor": 0.5}, "factor"),
        ({"max_s": 0.1}, "max_s"),
        ({"jitter_ratio": 1.5}, "jitter_ratio"),
    ],
)
def test_policy_validation(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BackoffPolicy(**kwargs)


def test_worst_case_of_the_rest_policy_and_of_a_reconnecting_socket() -> None:
    per_socket = worst_case_connects(BackoffPolicy(), window_s=300)
    # Floors 0.25, 0.5, 1, 2, 4, 8 then 15 s: 8 attempts by 30.75 s, then one per 15 s.
    assert per_socket == 25
    # A socket's own reconnects are short (floor 1.5 s): the shared budget keeps the IP limit
    # (tests/unit/protocol/test_connects.py), not this backoff.
    socket = worst_case_connects(SessionConfig().backoff, window_s=300)
    assert socket == 202 and socket < BYBIT_NEW_CONNECTIONS_PER_5_MIN
    with pytest.raises(ValueError, match="no worst-case bound"):
        worst_case_connects(BackoffPolicy(jitter_ratio=1.0), 300)


def count_dials(live_for_s: float | None, window_s: float = 300.0) -> int:
    """Dials one session makes in `window_s` if each connection dies after `live_for_s`."""
    session = ConnectionSession(
        "public-1",
        private=False,
        credentials=None,
        config=SessionConfig(),
        subscriptions=SubscriptionSet("public-1"),
        rng=FloorRandom(),
    )
    now, dials = T0, 0
    while now < T0 + window_s:
        session.start_connect(now)
        dials += 1
        if live_for_s is not None:
            session.on_open(now)
            session.tick(now + live_for_s)
            now += live_for_s
        session.on_close(now, "dropped")
        assert session.reconnect_at is not None
        now = session.reconnect_at
    return dials


def test_a_session_that_fails_instantly_matches_the_computed_worst_case() -> None:
    assert count_dials(live_for_s=None) == worst_case_connects(SessionConfig().backoff, 300)


@pytest.mark.parametrize("live_for_s", [1.0, 19.0, 59.0, 60.0, 61.0])
def test_flapping_connections_do_not_beat_the_worst_case(live_for_s: float) -> None:
    assert count_dials(live_for_s) <= worst_case_connects(SessionConfig().backoff, 300)
