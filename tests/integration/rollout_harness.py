"""The rollout streams wired to the simulator with UNIT_S-scaled thresholds, recording deliveries.

Thresholds are the production ones scaled down (5 s staleness -> 1 unit, 30 s socket-down
warning -> 1 unit, 1.5 s fast poll -> 0.3 unit), so every fault plays out in seconds. `close()`
checks what every stream test must leave behind: deliveries on the DESIGN §4 contract, no
handler error, no task left running, no socket left open on the simulator's side.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from bybit_hybrid.protocol.alerts import AlertConfig
from bybit_hybrid.protocol.compare import CompareConfig
from bybit_hybrid.protocol.failover import FailoverConfig, FailoverSwitched, FeedMode
from bybit_hybrid.protocol.hybrid import PRIVATE, CoreEvent
from bybit_hybrid.protocol.polling import PollConfig
from bybit_hybrid.protocol.session import SessionState
from bybit_hybrid.rollout.modes import RolloutConfig, RolloutMode, RolloutStream
from bybit_hybrid.rollout.poller import AdaptiveBybitStream
from bybit_hybrid.sim import SimServer
from tests.integration.stream_harness import CONFIG, Delivered, Harness, Recorder
from tests.support import UNIT_S, wait_for

POLL = PollConfig(fast_s=0.3 * UNIT_S, slow_s=0.6 * UNIT_S)
FAILOVER = FailoverConfig(
    mark_stale_s=1.0 * UNIT_S, private_down_s=1.0 * UNIT_S, healthy_for_s=1.0 * UNIT_S
)
ALERTS = AlertConfig(
    socket_down_warning_s=1.0 * UNIT_S,
    socket_down_critical_s=4.0 * UNIT_S,
    no_events_warning_s=2.0 * UNIT_S,
    no_events_critical_s=10.0 * UNIT_S,
    mark_stale_s=1.0 * UNIT_S,
    zero_subscriptions_grace_s=1.0 * UNIT_S,
    clear_hold_s=2.0 * UNIT_S,
    startup_grace_s=2.0 * UNIT_S,
)
ROLLOUT = RolloutConfig(
    failover=FAILOVER,
    alerts=ALERTS,
    poll=POLL,
    compare=CompareConfig(grace_s=1.0 * UNIT_S),
    eval_interval_s=0.05 * UNIT_S,
)

Stream = RolloutStream | AdaptiveBybitStream


@dataclass
class RolloutHarness(Harness):
    stream: Stream

    @property
    def rollout(self) -> RolloutStream:
        assert isinstance(self.stream, RolloutStream)
        return self.stream

    def switches(self, scope: str, new: FeedMode, since_t: float = 0.0) -> list[FailoverSwitched]:
        return [
            s for s in self.of_type(FailoverSwitched, since_t) if s.scope == scope and s.new is new
        ]

    def switched(self, scope: str, new: FeedMode, since_t: float = 0.0) -> Callable[[], bool]:
        return lambda: bool(self.switches(scope, new, since_t))

    def sources(self, symbol: str, since_t: float = 0.0) -> list[str]:
        return [
            d.data["source"]
            for d in self.delivered
            if d.at >= since_t and d.data["symbol"] == symbol
        ]

    def seen(self, symbol: str, source: str, since_t: float, times: int = 1) -> Callable[[], bool]:
        """A `wait_for` condition: `times` deliveries for `symbol` from `source` since `since_t`."""
        return lambda: self.sources(symbol, since_t).count(source) >= times

    async def wait_delivered(
        self, match: Callable[[dict[str, Any]], bool], since_t: float, timeout_s: float, what: str
    ) -> Delivered:
        found: list[Delivered] = []

        def check() -> bool:
            found[:] = [d for d in self.delivered if d.at >= since_t and match(d.data)]
            return bool(found)

        await wait_for(check, timeout_s, what)
        return found[0]

    def mark_of(self, symbol: str) -> Decimal:
        return self.sim.exchange.prices.mark(symbol)


def _listen(stream: Stream, rec: Recorder) -> None:
    def listener(event: CoreEvent) -> None:
        rec.listener(event)

    stream.add_listener(listener)


async def start_rollout(
    sim: SimServer, mode: RolloutMode, *, rollout: RolloutConfig = ROLLOUT
) -> RolloutHarness:
    """A rollout stream against `sim`, ready (first REST snapshot merged)."""
    tasks_before = asyncio.all_tasks()
    rec = Recorder()
    stream = RolloutStream(
        mode,
        sim.api_key,
        sim.api_secret,
        rec.handler,
        base_url=sim.base_url,
        rollout=rollout,
        config=CONFIG,
        rng=random.Random(7),
    )
    _listen(stream, rec)
    harness = RolloutHarness(sim, stream, rec, tasks_before)
    await stream.start()
    await stream.wait_ready(3 * UNIT_S)
    await wait_for(lambda: hybrid_live(stream), 3 * UNIT_S, "the hybrid stream live")
    return harness


def hybrid_live(stream: RolloutStream) -> bool:
    """Every socket LIVE, `position` confirmed, a ticker mark for each streamed symbol."""
    core = stream.hybrid.core
    if any(core.session(name).state is not SessionState.LIVE for name in core.sockets()):
        return False
    if "position" not in core.session(PRIVATE).subscriptions.confirmed:
        return False
    streamed = {s for s in core.book.open_symbols() if core.streams(s)}
    return all(core.mark_frame_at(symbol) is not None for symbol in streamed)


async def start_rest(sim: SimServer, *, poll: PollConfig = POLL) -> RolloutHarness:
    tasks_before = asyncio.all_tasks()
    rec = Recorder()
    stream = AdaptiveBybitStream(
        sim.api_key, sim.api_secret, rec.handler, base_url=sim.base_url, poll=poll
    )
    _listen(stream, rec)
    harness = RolloutHarness(sim, stream, rec, tasks_before)
    await stream.start()
    await stream.wait_ready(3 * UNIT_S)
    return harness


def tick_multiple(sim: SimServer, symbol: str, price: Decimal) -> Decimal:
    """`price` rounded down to the symbol's tick."""
    tick = sim.exchange.instruments[symbol].tick_size
    return (price / tick).to_integral_value() * tick
