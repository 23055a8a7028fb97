"""The shared connection budget: never more than the limit in any window, outages paced, and a
recovery that lets every waiting socket through at once. Manual clock, no event loop."""

from __future__ import annotations

import bisect
import itertools
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from bybit_hybrid.protocol.connects import ConnectBudget, ConnectBudgetConfig
from bybit_hybrid.protocol.hybrid import PRIVATE, HybridConfig, HybridCore
from bybit_hybrid.protocol.session import SessionState
from bybit_hybrid.wire.signing import Credentials

BYBIT_PER_IP_PER_5_MIN = 500


def run_attempts(budget: ConnectBudget, wants: list[float], outage: bool) -> list[float]:
    """Sockets that want to dial at `wants` (each once), served in time order by the budget."""
    done: list[float] = []
    for want in sorted(wants):
        at = max(want, budget.next_allowed_at(outage=outage))
        budget.record(at)
        done.append(at)
    return done


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.floats(0, 900, allow_nan=False), min_size=1, max_size=2000),
    st.booleans(),
)
def test_no_window_ever_holds_more_than_the_limit(wants: list[float], outage: bool) -> None:
    config = ConnectBudgetConfig(limit=40, window_s=30.0, outage_interval_s=0.5)
    done = run_attempts(ConnectBudget(config), wants, outage)
    for i, start in enumerate(done):
        in_window = [t for t in done[i:] if t < start + config.window_s]
        assert len(in_window) <= config.limit
    if outage:
        gaps = [b - a for a, b in itertools.pairwise(done)]
        assert all(gap >= config.outage_interval_s - 1e-9 for gap in gaps)


def test_the_defaults_stay_under_bybits_limit_even_when_every_socket_hammers() -> None:
    budget = ConnectBudget()
    # twenty sockets that would each dial every 0.1 s for ten minutes, no outage pacing
    wants = [i * 0.1 + s * 0.01 for i in range(6000) for s in range(20)]
    done = run_attempts(budget, wants, outage=False)
    # `done` is in time order: the attempts in [a, a + 300) by bisection, from every attempt.
    worst = max(bisect.bisect_left(done, a + 300) - i for i, a in enumerate(done))
    assert worst <= 450 < BYBIT_PER_IP_PER_5_MIN


def test_an_outage_uses_at_most_one_attempt_per_second_leaving_room_to_recover() -> None:
    budget = ConnectBudget()
    wants = [i * 0.2 for i in range(3000)]  # 600 s of eager retries
    done = run_attempts(budget, wants, outage=True)
    assert sum(1 for t in done if 300 <= t < 600) <= 301
    assert budget.next_allowed_at(outage=False) <= done[-1], "room left for a burst"


def core() -> HybridCore:
    return HybridCore(Credentials("k", "s"), HybridConfig(), random.Random(3))


def test_after_an_outage_one_open_releases_every_waiting_socket() -> None:
    c = core()
    names = c.sockets()
    now = 1000.0
    for name in names:  # start-up: not paced, nobody has failed yet
        assert c.reconnect_at(name) is None
        c.start_connect(name, now)
    for name in names:
        c.on_close(name, now, "connect failed: refused")
    for _ in range(200):  # a long outage: every dial refused
        for name in names:
            at = c.reconnect_at(name)
            if at is not None and at <= now:
                c.start_connect(name, now)
                c.on_close(name, now, "connect failed: refused")
        now += 0.25
    waits = [c.reconnect_at(name) for name in names]
    assert all(at is not None for at in waits)
    first = min(names, key=lambda n: c.reconnect_at(n) or 0.0)
    now = max(now, c.reconnect_at(first) or now)
    c.start_connect(first, now)
    c.on_open(first, now)  # the exchange accepts again
    assert c.take_schedule_changed()
    for name in names:
        if name != first:
            assert c.session(name).state is SessionState.DISCONNECTED
            at = c.reconnect_at(name)
            assert at is not None and at <= now, "no socket waits out its backoff"
    assert not c.take_schedule_changed(), "reported once"


def test_outage_pacing_spaces_the_sockets_but_start_up_is_not_paced() -> None:
    c = core()
    now = 5.0
    private, public = PRIVATE, next(n for n in c.sockets() if n != PRIVATE)
    c.start_connect(private, now)
    c.start_connect(public, now)  # both at once at start-up
    c.on_close(private, now, "connect failed")
    c.on_close(public, now, "connect failed")
    at_private = c.reconnect_at(private)
    assert at_private is not None
    c.start_connect(private, at_private)
    c.on_close(private, at_private, "connect failed")
    at_public = c.reconnect_at(public)
    assert at_public is not None and at_public >= at_private + 1.0
