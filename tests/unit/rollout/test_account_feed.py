"""Issue 19 F2: a silent private socket (TCP up, nothing arriving) is down for the account."""

from __future__ import annotations

import json
import random

import pytest

from bybit_hybrid.protocol.failover import AccountObservation, Failover, FailoverConfig, FeedMode
from bybit_hybrid.protocol.hybrid import POSITION_TOPIC, PRIVATE, HybridConfig, HybridCore
from bybit_hybrid.protocol.polling import PollConfig, PollNeeds, PollPlanner
from bybit_hybrid.protocol.session import SessionState
from bybit_hybrid.rollout import modes
from bybit_hybrid.wire.signing import Credentials
from tests.fixtures import frame
from tests.unit.protocol.test_hybrid_core import T0, _live_private, _live_public


@pytest.mark.parametrize("state", list(SessionState))
def test_only_a_live_or_subscribing_private_socket_serves_the_account(
    state: SessionState,
) -> None:
    # From the rule, not the code: a socket that delivers frames (LIVE) or is confirming its
    # subscriptions right after auth (SUBSCRIBING) serves the account; anything else, STALE
    # included, must let failover move the account to REST polling.
    expected = state in {SessionState.SUBSCRIBING, SessionState.LIVE}
    assert (state in modes.ACCOUNT_FEED_UP) is expected


# --- a silent private socket against production defaults, on a manual clock -------------------


def _silent_private_account(seconds: float) -> list[tuple[float, FeedMode, float]]:
    """Production defaults (HybridConfig, FailoverConfig, PollConfig); the private socket goes
    silent at T0 with a position open, and every reconnect hangs (a black-holed path). The
    shell's part (`rollout.evaluation.Evaluation._evaluate_failover`, `RolloutStream._needs`)
    is played here every 0.1 s: returns (time since silence, account mode, poll interval) at
    each step."""
    core = HybridCore(Credentials("key", "secret"), HybridConfig(), random.Random(7))
    failover = Failover(FailoverConfig())
    planner = PollPlanner(PollConfig())
    _live_private(core, T0 - 60)
    _live_public(core, T0 - 60)
    core.on_frame(PRIVATE, frame("F13"), T0 - 60)  # a position is open
    core.tick(T0)  # a ping goes out (both cadences, 3 s and 20 s, have one at T0)...
    assert [json.loads(f)["op"] for f in core.take_outbox(PRIVATE)] == ["ping"]
    core.on_frame(PRIVATE, frame("F04b"), T0)  # ...its pong is the last frame: the worst case
    seen: list[tuple[float, FeedMode, float]] = []
    for step in range(1, int(seconds * 10) + 1):
        now = T0 + step / 10
        core.tick(now)
        for name in core.sockets():
            core.take_outbox(name)
        if core.close_requested(PRIVATE) is not None:
            core.on_close(PRIVATE, now, "closed by the shell")
        at = core.reconnect_at(PRIVATE)
        if core.session(PRIVATE).state is SessionState.DISCONNECTED and at and at <= now:
            core.start_connect(PRIVATE, now)  # and it never opens
        private = core.session(PRIVATE)
        account = AccountObservation(
            private_up=private.state in modes.ACCOUNT_FEED_UP
            and POSITION_TOPIC in private.subscriptions.confirmed
        )
        failover.evaluate(now, account, {})
        needs = PollNeeds(
            open_positions=len(core.book),
            rest_drives=failover.polls_positions(),
            degraded=failover.degraded(),
        )
        seen.append((round(now - T0, 1), failover.account_mode, planner.interval_s(needs)))
    return seen


def test_a_silent_private_socket_makes_rest_poll_fast_within_a_few_seconds() -> None:
    # Issue 19 F2: with the defaults the socket was trusted for 30 s (20 s ping + 10 s pong)
    # while REST stayed on its 10 s reconcile. Now it is dead at most 5 s after its last frame
    # (3 s ping + 2 s pong): the account is DEGRADED (fast polling) at once, POLLING
    # `private_down_s` (5 s) later.
    seen = _silent_private_account(15.0)
    fast_from = next(t for t, _, interval in seen if interval == PollConfig().fast_s)
    polling_from = next(t for t, mode, _ in seen if mode is FeedMode.POLLING)
    assert fast_from <= 5.0
    assert polling_from <= 5.0 + FailoverConfig().private_down_s
    # Once fast, it stays fast while the socket stays down.
    assert all(interval == PollConfig().fast_s for t, _, interval in seen if t >= fast_from)
