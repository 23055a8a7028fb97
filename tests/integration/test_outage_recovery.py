"""After an outage of every WebSocket (REST still up), with production timings: every socket is
due to dial again within the reconnect cap of the exchange accepting, comes back LIVE, and the
attempts made during the outage are paced by the shared budget. Longer outages (120 s) and the
measured time to LIVE are in bench/outage_recovery.py."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable

import pytest

from bybit_hybrid.protocol.connects import ConnectBudgetConfig
from bybit_hybrid.protocol.hybrid import HybridConfig
from bybit_hybrid.protocol.session import SessionState
from bybit_hybrid.protocol.session_config import RECONNECT_MAX_S
from bybit_hybrid.sim import SimServer
from bybit_hybrid.stream import BybitHybridStream
from tests.support import UNIT_S, wait_for


def all_live(stream: BybitHybridStream) -> Callable[[], bool]:
    core = stream.core
    return lambda: all(core.session(n).state is SessionState.LIVE for n in core.sockets())


@pytest.mark.parametrize("outage_s", [5.0, 25.0])
async def test_every_socket_is_due_within_the_cap_after_an_outage(
    sim: SimServer, outage_s: float
) -> None:
    stream = BybitHybridStream(
        sim.api_key, sim.api_secret, base_url=sim.base_url, config=HybridConfig(),
        rng=random.Random(5),
    )  # fmt: skip
    await stream.start()
    try:
        await stream.wait_ready(3 * UNIT_S)
        await wait_for(all_live(stream), 3 * UNIT_S, "all sockets live")
        core = stream.core
        before = core.connects.attempts_total
        sim.faults.refuse_connections(outage_s)
        await sim.faults.drop()
        accepts_at = time.monotonic() + outage_s
        await asyncio.sleep(outage_s)  # the outage itself: nothing to wait for but time
        # The exchange accepts again: every socket is due to dial within one reconnect cap
        # (or is already through). This is the core's schedule, not a measured duration.
        now = stream.now()
        for name in core.sockets():
            at = core.reconnect_at(name)
            assert at is None or at <= now + RECONNECT_MAX_S + 1e-6, (name, at - now)
        await wait_for(all_live(stream), 2 * RECONNECT_MAX_S + 3 * UNIT_S, "all live again")
        attempts = core.connects.attempts_total - before
        paced = outage_s / ConnectBudgetConfig().outage_interval_s
        assert attempts <= paced + 2 * len(core.sockets()), attempts
        assert time.monotonic() >= accepts_at
    finally:
        await stream.stop()
