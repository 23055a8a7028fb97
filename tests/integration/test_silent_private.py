"""A silent private socket in hybrid mode, every threshold scaled together (issue 19 F2).

The production defaults (`SessionConfig`, `FailoverConfig`, `PollConfig`, `BackoffPolicy`)
are all multiplied by one factor `K`, so their ratios, which decide whether a silent socket
is noticed before the slow reconcile, stay as shipped (scaling them unevenly is what hid F2).
The private socket goes silent (TCP up, no pong, no push) right after a poll, and a position
opens meanwhile: it must reach the consumer well before the next slow reconcile would bring it.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from bybit_hybrid.protocol.backoff import BackoffPolicy
from bybit_hybrid.protocol.failover import FailoverConfig
from bybit_hybrid.protocol.hybrid import PRIVATE, HybridConfig
from bybit_hybrid.protocol.polling import PollConfig
from bybit_hybrid.protocol.session import SessionConfig, SocketDead
from bybit_hybrid.rollout.modes import RolloutConfig
from bybit_hybrid.sim import SimServer
from bybit_hybrid.sim.faults import Target
from tests.integration.rollout_harness import start_rollout
from tests.integration.stream_harness import sim_config
from tests.support import UNIT_S, wait_for

# Production seconds -> test seconds: 3 s private ping -> 0.6 s, 10 s slow poll -> 2 s.
K = 0.2 * UNIT_S
SOL = "SOLUSDT"


def _scaled(config: object) -> object:
    """Every float field ending in `_s` multiplied by K (nested configs too)."""
    changes: dict[str, object] = {}
    for f in dataclasses.fields(config):  # type: ignore[arg-type]
        value = getattr(config, f.name)
        if isinstance(value, float) and f.name.endswith("_s"):
            changes[f.name] = value * K
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            changes[f.name] = _scaled(value)
    return dataclasses.replace(config, **changes)  # type: ignore[type-var]


def scaled_configs() -> tuple[HybridConfig, RolloutConfig]:
    session = _scaled(SessionConfig())
    backoff = _scaled(BackoffPolicy())
    assert isinstance(session, SessionConfig) and isinstance(backoff, BackoffPolicy)
    hybrid = HybridConfig(session=session, rest_backoff=backoff)
    failover, poll = _scaled(FailoverConfig()), _scaled(PollConfig())
    assert isinstance(failover, FailoverConfig) and isinstance(poll, PollConfig)
    # Except the symbols' mark staleness: the simulator's quiet marks do not move every tick,
    # and a mark that does not move still counts as stale (F4, h19alarm's row). Scaled, it
    # would put a symbol on fast polling now and then, which would bring the position early
    # for the wrong reason. This test is about the account scope.
    failover = dataclasses.replace(failover, mark_stale_s=FailoverConfig().mark_stale_s)
    rollout = RolloutConfig(failover=failover, poll=poll, eval_interval_s=0.25 * K)
    return hybrid, rollout


@pytest.fixture
async def sim() -> AsyncIterator[SimServer]:
    async with SimServer(sim_config()) as server:
        yield server


async def test_a_position_opened_while_the_private_socket_is_silent_arrives_early(
    sim: SimServer,
) -> None:
    hybrid, rollout = scaled_configs()
    h = await start_rollout(sim, "hybrid", rollout=rollout, config=hybrid)
    stream = h.rollout
    try:
        poller = stream.poller
        assert poller is not None
        slow_s = rollout.poll.slow_s

        def settled() -> bool:  # every scope STREAMING: REST only reconciles, slowly
            assert poller is not None
            return bool(poller.status(stream.now())["interval_s"] == slow_s)

        await wait_for(settled, 4 * slow_s, "the slow reconcile interval")
        # Right after a poll: the slow reconcile is as far away as it gets.
        polls = poller.planner.stats.polls
        await wait_for(
            lambda: poller.planner.stats.polls > polls, 4 * rollout.poll.slow_s, "a poll"
        )
        silenced_at = time.monotonic()
        assert sim.faults.silence(Target.PRIVATE) == 1
        await sim.open_position(SOL, "Buy", Decimal("1"))  # its push is lost
        opened = await h.wait_delivered(
            lambda d: d["symbol"] == SOL, silenced_at, 2 * slow_s, "SOL from REST"
        )
        late_s = opened.at - silenced_at
        # Dead within ping + pong (5 s in production), then the reconnect's reconcile or a
        # fast poll brings it; the slow reconcile would have taken 10 s.
        assert late_s < 0.8 * slow_s, f"{late_s:.2f} s late; the slow reconcile is {slow_s} s"
        dead = [e for e in h.of_type(SocketDead, silenced_at) if e.connection == PRIVATE]
        assert dead and "pong" in dead[0].reason
    finally:
        await h.close()
