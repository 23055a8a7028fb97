"""The rollout streams on the simulator, every threshold scaled from ONE unit, recording deliveries.

Every production threshold (session heartbeats and timeouts, backoffs, subscription retries,
failover, polling, alerts, comparison) is multiplied by one factor `K` (5 production seconds
-> 1 `UNIT_S`), so their ratios stay as shipped: which timer fires first is what decides
whether a fault is caught (the old harness scaled them unevenly, slow poll 10 -> 0.6 s but
healthy-for 30 -> 1 s and the session x0.05, and hid issue 19 F2/F3). Only `auth_expires_s`
(a signature's lifetime at Bybit, not a timer of ours) and the counts are left alone.
`close()` checks what every stream test must leave behind: deliveries on the DESIGN §4
contract, no handler error, no task left running, no socket left open on the simulator's side.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final, TypeVar

from bybit_hybrid.protocol.alerts import AlertConfig
from bybit_hybrid.protocol.compare import CompareConfig
from bybit_hybrid.protocol.failover import FailoverConfig, FailoverSwitched, FeedMode
from bybit_hybrid.protocol.hybrid import PRIVATE, CoreEvent, HybridConfig
from bybit_hybrid.protocol.polling import PollConfig
from bybit_hybrid.protocol.session import SessionState
from bybit_hybrid.rollout.modes import RolloutConfig, RolloutStream
from bybit_hybrid.rollout.poller import AdaptiveBybitStream
from bybit_hybrid.rollout.sources import RolloutMode
from bybit_hybrid.service.streams import rollout_stream
from bybit_hybrid.sim import SimServer
from bybit_hybrid.transport.http import HttpBackend
from tests.integration.stream_harness import Delivered, Harness, Recorder
from tests.support import UNIT_S, wait_for

# Production seconds -> test seconds: 5 s mark staleness -> 1 unit, 30 s healthy-for -> 6.
K: Final = 0.2 * UNIT_S
_UNSCALED: Final = frozenset({"auth_expires_s"})

C = TypeVar("C")


def scaled(config: C) -> C:
    """`config` with every float field named `*_s` multiplied by `K`, nested configs too."""
    changes: dict[str, object] = {}
    for f in dataclasses.fields(config):  # type: ignore[arg-type]
        value = getattr(config, f.name)
        if isinstance(value, float) and f.name.endswith("_s") and f.name not in _UNSCALED:
            changes[f.name] = value * K
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            changes[f.name] = scaled(value)
    return dataclasses.replace(config, **changes)  # type: ignore[type-var]


HYBRID: Final = scaled(HybridConfig())
POLL: Final = scaled(PollConfig())
FAILOVER: Final = scaled(FailoverConfig())
ALERTS: Final = scaled(AlertConfig())
COMPARE: Final = scaled(CompareConfig())
# Production evaluates every min(0.25 s, mark_stale_s / 10) (service.streams).
ROLLOUT: Final = RolloutConfig(
    failover=FAILOVER, alerts=ALERTS, poll=POLL, compare=COMPARE, eval_interval_s=0.25 * K
)

# Waits derived from the same thresholds (plus one unit of slack for a busy 2-core box):
# a silent socket is dead one ping plus one pong timeout after its last frame; a reconnect
# after repeated failures waits up to the backoff's cap (with its jitter); a POLLING scope
# returns after `healthy_for_s` unbroken.
_SESSION = HYBRID.session
SOCKET_DEAD_S: Final = _SESSION.ping_interval_s + _SESSION.pong_timeout_s + UNIT_S
RECONNECT_S: Final = _SESSION.backoff.max_s * (1 + _SESSION.backoff.jitter_ratio) + UNIT_S
RETURN_S: Final = FAILOVER.healthy_for_s + 2 * UNIT_S

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
    sim: SimServer,
    mode: RolloutMode,
    *,
    rollout: RolloutConfig = ROLLOUT,
    config: HybridConfig = HYBRID,
) -> RolloutHarness:
    """A rollout stream against `sim`, ready (first REST snapshot merged)."""
    tasks_before = asyncio.all_tasks()
    rec = Recorder()
    stream = rollout_stream(
        mode,
        sim.api_key,
        sim.api_secret,
        rec.handler,
        base_url=sim.base_url,
        rollout=rollout,
        config=config,
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


async def start_rest(
    sim: SimServer, *, poll: PollConfig = POLL, http_backend: HttpBackend | None = None
) -> RolloutHarness:
    """A REST-only stream against `sim`, ready (first poll merged)."""
    tasks_before = asyncio.all_tasks()
    rec = Recorder()
    stream = AdaptiveBybitStream(
        sim.api_key,
        sim.api_secret,
        rec.handler,
        base_url=sim.base_url,
        poll=poll,
        http_backend=http_backend,
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
