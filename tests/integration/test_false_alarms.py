"""Issue 19 F4/F5/F7 end to end: a quiet market, a fast market, an outage: no false alarm."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from bybit_hybrid.protocol.alerts import AlertRaised
from bybit_hybrid.protocol.compare import Divergence
from bybit_hybrid.protocol.failover import FeedMode
from bybit_hybrid.protocol.session import SessionState
from bybit_hybrid.sim import SimServer
from tests.integration.rollout_harness import (
    ALERTS,
    RECONNECT_S,
    ROLLOUT,
    SOCKET_DEAD_S,
    start_rollout,
    tick_multiple,
)
from tests.integration.stream_harness import sim_config
from tests.support import UNIT_S, wait_for

BTC, ETH = "BTCUSDT", "ETHUSDT"
STALE_S = ROLLOUT.failover.mark_stale_s


@pytest.fixture
async def sim() -> AsyncIterator[SimServer]:
    async with SimServer(sim_config()) as server:
        yield server


async def test_a_quiet_market_keeps_its_symbol_on_the_streams(sim: SimServer) -> None:
    """F4: trades flow, the mark does not move (Bybit's deltas then carry no markPrice). The
    old code judged the ticker by mark-bearing frames and sent BTC to REST after 1 stretch."""
    h = await start_rollout(sim, "hybrid")
    try:
        sim.set_quiet(BTC)
        t0 = time.monotonic()
        core = h.rollout.hybrid.core
        failover = h.rollout.failover
        assert failover is not None
        # Three stale stretches of trades without a mark change.
        await wait_for(lambda: time.monotonic() - t0 > 3 * STALE_S, 6 * STALE_S, "3 stretches")
        frame_at, mark_at = core.marks.frame_at(BTC), core.mark_frame_at(BTC)
        now = h.rollout.now()
        # The feed was live (frames a moment ago) while the mark stood still all along.
        assert frame_at is not None and now - frame_at < STALE_S
        assert mark_at is not None and now - mark_at > 3 * STALE_S
        assert not h.switches(BTC, FeedMode.POLLING) and not h.switches(BTC, FeedMode.DEGRADED)
        assert failover.symbol_mode(BTC) is FeedMode.STREAMING
        # The frozen mark was sampled from REST, which agreed each time.
        assert failover.stats.mark_checks >= 1 and failover.stats.mark_check_mismatches == 0
    finally:
        sim.set_quiet(BTC, False)
        await h.close()


async def test_a_spike_right_after_a_poll_raises_no_divergence(sim: SimServer) -> None:
    """F5: the mark jumps 1.2 % just after a REST poll. The old comparator held the new hybrid
    mark against that older REST sample and raised a critical divergence, both feeds exact."""
    h = await start_rollout(sim, "parallel")
    try:
        rest = h.rollout.rest_stream
        comparator = h.rollout.comparator
        assert rest is not None and comparator is not None
        polls: list[float] = []
        rest.add_poll_listener(polls.append)
        await wait_for(lambda: bool(polls), 3 * UNIT_S, "a REST poll")
        sim.pause_ticks(BTC)
        spiked = tick_multiple(sim, BTC, h.mark_of(BTC) * Decimal("1.012"))
        await sim.set_mark(BTC, spiked)
        core = h.rollout.hybrid.core
        await wait_for(lambda: core.marks.mark(BTC) == spiked, 2 * UNIT_S, "the spike streamed")
        seen = len(polls)
        await wait_for(lambda: len(polls) >= seen + 4, 6 * UNIT_S, "four more REST polls")
        marks = [d for d in h.of_type(Divergence) if d.kind == "mark"]
        assert marks == []
        assert comparator.stats.mark_comparisons >= 4
    finally:
        sim.resume_ticks(BTC)
        await h.close()


async def test_a_black_holed_public_socket_is_socket_down_not_zero_subscriptions(
    sim: SimServer,
) -> None:
    """F7: the public socket and every replacement accept the upgrade and then say nothing.
    The old code counted a socket waiting for its subscribe acks as up: after the redial it
    raised zero_subscriptions (critical) and socket_down never fired."""
    h = await start_rollout(sim, "hybrid")
    try:
        sim.blackhole("public")
        t0 = time.monotonic()

        def names() -> set[str]:
            return {a.name for a in h.of_type(AlertRaised, t0)}

        # Dead after one ping + pong, then down for the socket-down warning (30 s production).
        await wait_for(
            lambda: "socket_down.public-1" in names(),
            SOCKET_DEAD_S + RECONNECT_S + ALERTS.socket_down_warning_s,
            "socket_down.public-1",
        )
        assert "zero_subscriptions" not in names()
        # The marks went to REST meanwhile: the outage was served, and said once per cause.
        assert h.switches(BTC, FeedMode.POLLING, t0) and h.switches(ETH, FeedMode.POLLING, t0)
    finally:
        sim.blackhole("public", on=False)
        await h.close()


async def test_a_subscribe_into_a_black_hole_is_not_zero_subscriptions(sim: SimServer) -> None:
    """Issue 19: a position opens on a public socket that is already black-holed but whose
    pong is not yet overdue. Its subscribe goes unanswered; the old code raised
    zero_subscriptions (critical) one grace later, while the socket was merely unheard-from.
    Now: nothing until the pong is overdue, then the socket is down (`socket_down`)."""
    h = await start_rollout(sim, "hybrid")
    try:
        core = h.rollout.hybrid.core
        await sim.close_position(BTC, 0)
        await sim.close_position(ETH, 0)
        await wait_for(lambda: not core.book.open_symbols(), 2 * UNIT_S, "a flat book")
        await wait_for(lambda: core.subscribed_tickers() == 0, 2 * UNIT_S, "no ticker held")
        sim.blackhole("public")
        t0 = time.monotonic()
        sol = sorted(sim.exchange.instruments)[-1]
        await sim.open_position(sol, "Buy", sim.exchange.instruments[sol].min_order_qty)
        await wait_for(lambda: sol in core.book.open_symbols(), 2 * UNIT_S, f"{sol} opened")

        def names() -> set[str]:
            return {a.name for a in h.of_type(AlertRaised, t0)}

        await wait_for(
            lambda: "socket_down.public-1" in names(),
            SOCKET_DEAD_S + RECONNECT_S + ALERTS.socket_down_warning_s,
            "socket_down.public-1",
        )
        assert "zero_subscriptions" not in names()
        # The mark was served meanwhile: the symbol went to REST.
        assert h.switches(sol, FeedMode.POLLING, t0)
    finally:
        sim.blackhole("public", on=False)
        await h.close()


async def test_a_completely_quiet_shard_stays_on_the_streams_and_dies_fast_when_black_holed(
    sim: SimServer,
) -> None:
    """Issue 19: every symbol still, so Bybit pushes nothing and only pongs show the public
    socket alive. With the 20 s cadence alone (4 s here) the old code took each live symbol
    for silent after one stretch and sent it to REST; a black-holed quiet socket was dead only
    at ping + pong. Now it pings once idle for `idle_ping_s` and is dead within twice that."""
    h = await start_rollout(sim, "hybrid")
    try:
        core = h.rollout.hybrid.core
        session = core.session("public-1")
        idle_s = session.config.idle_ping_s
        assert idle_s is not None and idle_s < STALE_S * ROLLOUT.failover.suspect_fraction
        sim.pause_ticks()  # nothing moves: the public socket gets no ticker frame at all
        t0 = time.monotonic()
        await wait_for(lambda: time.monotonic() - t0 > 4 * STALE_S, 6 * STALE_S, "4 stretches")
        assert not h.switches(BTC, FeedMode.POLLING, t0)
        assert not h.switches(ETH, FeedMode.POLLING, t0)
        last_ticker = core.marks.frame_at(BTC)
        assert last_ticker is not None and h.rollout.now() - last_ticker > 3 * STALE_S
        sim.blackhole("public")
        await wait_for(
            lambda: session.state not in (SessionState.LIVE, SessionState.STALE),
            2 * idle_s + UNIT_S,
            "the black-holed quiet socket declared dead",
        )
        await wait_for(h.switched(BTC, FeedMode.POLLING, t0), 2 * UNIT_S, "BTC served by REST")
    finally:
        sim.blackhole("public", on=False)
        sim.resume_ticks()
        await h.close()
