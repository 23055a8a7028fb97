"""No open position goes silent for longer than the staleness threshold plus one poll interval.

A hybrid-mode stream runs through every fault the simulator can inject, one after another,
while both positions' marks trend (so every poll has a real change to report). Each step
waits for the logic to play out (a fallback, a reconnect, fresh events), never for a fixed
time. The gaps between consecutive deliveries per open position are measured over the whole
sequence.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest

from bybit_hybrid.protocol.failover import ACCOUNT, FeedMode
from bybit_hybrid.protocol.hybrid import PRIVATE
from bybit_hybrid.protocol.session import SessionState, StateChanged
from bybit_hybrid.sim import SimServer
from tests.integration.rollout_harness import (
    FAILOVER,
    POLL,
    RECONNECT_S,
    ROLLOUT,
    SOCKET_DEAD_S,
    RolloutHarness,
    start_rollout,
)
from tests.integration.stream_harness import PUBLIC, sim_config
from tests.support import UNIT_S, wait_for

BTC, ETH = "BTCUSDT", "ETHUSDT"
BOUND_S = FAILOVER.mark_stale_s + POLL.fast_s
# The bound does not depend on how long a scope must be healthy before it streams again, so
# the hysteresis is two stale periods here instead of six: each of the eight steps that wait
# for the return is four units shorter, and every hand-back is still measured.
GAPS_FAILOVER = dataclasses.replace(FAILOVER, healthy_for_s=2 * FAILOVER.mark_stale_s)
GAPS_ROLLOUT = dataclasses.replace(ROLLOUT, failover=GAPS_FAILOVER)
RETURN_S = GAPS_FAILOVER.healthy_for_s + 2 * UNIT_S


@pytest.fixture
async def sim() -> AsyncIterator[SimServer]:
    async with SimServer(sim_config()) as server:
        yield server


@dataclass
class Step:
    name: str
    run: Callable[[RolloutHarness, float], Awaitable[None]]


def _live_again(h: RolloutHarness, name: str, since_t: float) -> Callable[[], bool]:
    return lambda: any(
        t >= since_t
        and isinstance(e, StateChanged)
        and e.connection == name
        and e.new is SessionState.LIVE
        for t, e in h.rec.core_events
    )


async def _streaming_again(h: RolloutHarness, *scopes: str) -> None:
    failover = h.rollout.failover
    assert failover is not None

    def all_streaming() -> bool:
        modes = [failover.account_mode, *(failover.symbol_mode(s) for s in (BTC, ETH))]
        return all(m is FeedMode.STREAMING for m in modes)

    await wait_for(all_streaming, RETURN_S + RECONNECT_S, f"streams serving again after {scopes}")
    for symbol in (BTC, ETH):
        since = time.monotonic()
        await wait_for(h.seen(symbol, "ticker", since, 2), 2 * UNIT_S, f"{symbol} tickers")


async def _fallback(h: RolloutHarness, since_t: float, *scopes: str) -> None:
    for scope in scopes:
        await wait_for(h.switched(scope, FeedMode.POLLING, since_t), 4 * UNIT_S, f"{scope} to REST")
    # A symbol in fallback is served by REST; the others keep their tickers.
    since = time.monotonic()
    wanted = [h.seen(s, "rest" if s in scopes else "ticker", since, 2) for s in (BTC, ETH)]
    await wait_for(lambda: all(c() for c in wanted), 2 * UNIT_S, f"events during {scopes}")


async def drop_all(h: RolloutHarness, t: float) -> None:
    await h.sim.faults.drop(abrupt=True)
    await wait_for(_live_again(h, PRIVATE, t), RECONNECT_S, "private reconnected")
    await wait_for(_live_again(h, PUBLIC, t), RECONNECT_S, "public reconnected")
    await _streaming_again(h)


async def silence(h: RolloutHarness, t: float, target: str, name: str) -> None:
    h.sim.faults.silence(target)
    await wait_for(
        _live_again(h, name, t), SOCKET_DEAD_S + RECONNECT_S, f"{name} replaced after silence"
    )
    await _streaming_again(h)


async def silence_public(h: RolloutHarness, t: float) -> None:
    await silence(h, t, "public", PUBLIC)


async def silence_private(h: RolloutHarness, t: float) -> None:
    await silence(h, t, "private", PRIVATE)


async def mute_btc(h: RolloutHarness, t: float) -> None:
    h.sim.faults.mute(BTC)
    await _fallback(h, t, BTC)
    h.sim.faults.mute(BTC, on=False)
    await _streaming_again(h, BTC)


async def stale_mark_eth(h: RolloutHarness, t: float) -> None:
    h.sim.faults.stale_mark(ETH)
    await _fallback(h, t, ETH)
    h.sim.faults.stale_mark(ETH, on=False)
    await _streaming_again(h, ETH)


async def refuse_connections(h: RolloutHarness, t: float) -> None:
    h.sim.faults.refuse_connections(3 * UNIT_S)
    await h.sim.faults.drop(abrupt=True)
    await _fallback(h, t, ACCOUNT, BTC, ETH)
    await _streaming_again(h, ACCOUNT)


async def reject_auth(h: RolloutHarness, t: float) -> None:
    h.sim.faults.reject_auth(seconds=1.5 * UNIT_S)
    await h.sim.faults.drop("private")
    await _fallback(h, t, ACCOUNT)
    await _streaming_again(h, ACCOUNT)


async def delay_frames(h: RolloutHarness, t: float) -> None:
    h.sim.faults.delay_frames(int(300 * UNIT_S))
    await wait_for(h.seen(BTC, "ticker", t, 10), 4 * UNIT_S, "delayed tickers")
    h.sim.faults.delay_frames(0)


async def rest_errors(h: RolloutHarness, t: float) -> None:
    h.sim.faults.rest_errors("5xx", count=3)
    await wait_for(lambda: h.sim.faults.state.rest_error_count == 0, 6 * UNIT_S, "errors used")
    await wait_for(h.seen(BTC, "ticker", time.monotonic(), 3), 2 * UNIT_S, "tickers meanwhile")


async def cut_idle(h: RolloutHarness, t: float) -> None:
    h.sim.faults.cut_idle(0)
    await wait_for(_live_again(h, PRIVATE, t), RECONNECT_S, "private back after idle cut")
    await _streaming_again(h)


async def garbage(h: RolloutHarness, t: float) -> None:
    h.sim.faults.send_malformed()
    h.sim.faults.send_unknown_topic()
    await wait_for(h.seen(ETH, "ticker", t, 3), 2 * UNIT_S, "tickers after garbage")


STEPS = [
    Step("drop all sockets", drop_all),
    Step("silence public", silence_public),
    Step("mute BTC ticker", mute_btc),
    Step("stale ETH mark", stale_mark_eth),
    Step("refuse connections", refuse_connections),
    Step("reject auth", reject_auth),
    Step("delay frames", delay_frames),
    Step("rest errors", rest_errors),
    Step("idle cut", cut_idle),
    Step("silence private", silence_private),
    Step("malformed and unknown frames", garbage),
]


async def test_no_open_position_goes_silent_longer_than_staleness_plus_one_poll(
    sim: SimServer,
) -> None:
    h = await start_rollout(sim, "hybrid", rollout=GAPS_ROLLOUT)
    try:
        for symbol in (BTC, ETH):
            sim.set_trend(symbol, 3)  # a new mark every tick: silence can only be ours
        await wait_for(h.seen(BTC, "ticker", 0.0, 3), 2 * UNIT_S, "tickers flowing")
        start = time.monotonic()
        windows: list[tuple[str, float, float]] = []
        for step in STEPS:
            t = time.monotonic()
            await step.run(h, t)
            windows.append((step.name, t, time.monotonic()))
        end = time.monotonic()

        worst: list[tuple[float, str, str]] = []
        for symbol in (BTC, ETH):
            times = [
                start,
                *(d.at for d in h.delivered if start <= d.at and d.data["symbol"] == symbol),
                end,
            ]
            for before, after in itertools.pairwise(times):
                fault = next((n for n, a, b in windows if a <= after <= b), "?")
                worst.append((after - before, symbol, fault))
        worst.sort(reverse=True)
        assert worst[0][0] <= BOUND_S, f"longest silences (s, symbol, fault): {worst[:5]}"
        # The sequence really did exercise the fallback, for symbols and for the account.
        assert h.switches(ACCOUNT, FeedMode.POLLING) and h.switches(BTC, FeedMode.POLLING)
        assert h.switches(ETH, FeedMode.POLLING)
    finally:
        sim.faults.clear()
        await h.close()
