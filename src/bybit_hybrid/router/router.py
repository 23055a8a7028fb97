"""Event router: core events routed by class to async consumers, each behind its `Dispatcher`.

A consumer subscribes to event classes (`on(MarkUpdated, handler)`): the class is the event's
one name, and the handler receives a `RoutedEvent` whose `event` is that typed event.

Lifecycle events queue FIFO and are never dropped; conflatable events (marks) keep only the
newest per key while they wait, and never overtake a lifecycle event of the same key (that is
the `Mailbox` contract). A handler that raises is logged with its name and counted; the other
consumers, and its own next events, carry on. Per consumer the router measures latency (from
the router's receipt of the original event to the handler's completion) and backlog.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Final

from bybit_hybrid.protocol.events import (
    MarkUpdated,
    PositionChanged,
    PositionClosed,
    PositionOpened,
)
from bybit_hybrid.protocol.hybrid import CoreEvent, Reconciled
from bybit_hybrid.router.dispatch import Dispatcher
from bybit_hybrid.router.fanout import name_of

log = logging.getLogger(__name__)

_LATENCY_SAMPLES: Final = 4096
# What the router carries: the position events and the REST reconcile report.
RouterEvent = PositionOpened | PositionChanged | PositionClosed | MarkUpdated | Reconciled
ROUTER_EVENTS: Final = (PositionOpened, PositionChanged, PositionClosed, MarkUpdated, Reconciled)
_RECONCILED_KEY: Final = "reconciled"


@dataclass(frozen=True, slots=True)
class RoutedEvent:
    """What a handler receives. `received_at_s` is `time.perf_counter()` at the router's
    receipt of the event this one derives from (kept across re-emits, so latency is end to end).
    """

    event: RouterEvent
    source: str
    received_at_s: float

    @property
    def name(self) -> str:
        """The event's one name: its class's."""
        return self.event.__class__.__name__


Handler = Callable[[RoutedEvent], Awaitable[None]]


@dataclass
class ConsumerStats:
    handled: int = 0
    errors: int = 0
    latency_s: deque[float] = field(default_factory=lambda: deque(maxlen=_LATENCY_SAMPLES))
    max_latency_s: float = 0.0

    def record(self, latency_s: float) -> None:
        self.handled += 1
        self.latency_s.append(latency_s)
        self.max_latency_s = max(self.max_latency_s, latency_s)


class _Consumer:
    """One handler: the events it takes and the `Dispatcher` that runs it on them."""

    def __init__(self, name: str, handler: Handler, clock: Callable[[], float]) -> None:
        self.name = name
        self.handler = handler
        self.events: set[type[RouterEvent]] = set()
        self.stats = ConsumerStats()
        self._clock = clock
        self.dispatcher: Dispatcher[RoutedEvent] = Dispatcher(
            f"router-{name}", handler, on_done=self._done, on_error=self._failed
        )

    def _done(self, routed: RoutedEvent) -> None:
        self.stats.record(self._clock() - routed.received_at_s)

    def _failed(self, routed: RoutedEvent) -> None:
        self.stats.errors += 1
        log.exception("handler %s failed on %s", self.name, routed.name)


class EventRouter:
    """`on(EventClass, handler)` registers, `emit(event)` delivers; `start()` runs."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self._clock = clock
        self._consumers: dict[str, _Consumer] = {}
        self._by_event: dict[type[RouterEvent], list[_Consumer]] = {}
        self._running = False
        self.emitted = 0

    # --- registration ----------------------------------------------------------------------

    def on(self, event: type[RouterEvent], handler: Handler, *, name: str | None = None) -> None:
        """Subscribes `handler` to the class `event`. One handler (by name) is one consumer,
        whatever the number of classes it takes, so its events stay in one ordered mailbox."""
        if event not in ROUTER_EVENTS:
            raise ValueError(f"the router carries no {event!r} (it routes {ROUTER_EVENTS})")
        name = name or name_of(handler)
        consumer = self._consumers.get(name)
        if consumer is None:
            consumer = self._consumers[name] = _Consumer(name, handler, self._clock)
            if self._running:
                consumer.dispatcher.start()
        elif consumer.handler != handler:  # bound methods are equal, not identical
            raise ValueError(f"another handler is already registered as {name!r}")
        if event not in consumer.events:
            consumer.events.add(event)
            self._by_event.setdefault(event, []).append(consumer)

    # --- delivery --------------------------------------------------------------------------

    def emit(self, event: RouterEvent, *, received_at_s: float | None = None) -> None:
        """Queues `event` for every consumer of its class; never blocks, never drops lifecycle.

        A mark is a replaceable update: only the newest per position waits in a mailbox.
        `received_at_s` (default: now) is when the event this one derives from was received.
        """
        if isinstance(event, Reconciled):
            key: Hashable = _RECONCILED_KEY
            source = "rest"
        else:
            key, source = event.key, event.view.source.value
        routed = RoutedEvent(event, source, received_at_s or self._clock())
        self.emitted += 1
        mark = event.__class__ is MarkUpdated
        for consumer in self._by_event.get(event.__class__, ()):
            if mark:
                consumer.dispatcher.put_mark(key, routed)
            else:
                consumer.dispatcher.put_lifecycle(key, routed)

    def on_core_event(self, event: CoreEvent) -> None:
        """A `PositionStream` listener: the events the router carries are routed, the rest
        (session and rollout reports) are not its business."""
        if isinstance(event, ROUTER_EVENTS):
            self.emit(event)

    def attach(self, stream: Any) -> None:
        """Listens to a `PositionStream` (anything with `add_listener`)."""
        stream.add_listener(self.on_core_event)

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        self._running = True
        for consumer in self._consumers.values():
            consumer.dispatcher.start()

    async def stop(self) -> None:
        self._running = False
        for consumer in self._consumers.values():
            await consumer.dispatcher.stop()

    async def drain(self, timeout_s: float = 5.0) -> None:
        """Waits until every mailbox is empty and no handler is running (tests, shutdown)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not self.idle():
            if loop.time() > deadline:
                raise TimeoutError("router did not drain")
            await asyncio.sleep(0.001)

    def idle(self) -> bool:
        return all(c.dispatcher.idle() for c in self._consumers.values())

    # --- measurements ----------------------------------------------------------------------

    def stats(self) -> dict[str, dict[str, Any]]:
        """Per consumer: handled, errors, backlog now and at most, conflated marks, latency."""
        return {name: _consumer_stats(c) for name, c in self._consumers.items()}


def percentile(samples: list[float], pct: float) -> float:
    """Nearest-rank percentile of `samples` (0.0 when empty)."""
    if not samples:
        return 0.0
    ordered = sorted(samples)
    rank = max(0, min(len(ordered) - 1, math.ceil(pct / 100 * len(ordered)) - 1))
    return ordered[rank]


def _consumer_stats(consumer: _Consumer) -> dict[str, Any]:
    samples = list(consumer.stats.latency_s)
    box = consumer.dispatcher.mailbox.stats
    return {
        "handled": consumer.stats.handled,
        "errors": consumer.stats.errors,
        "backlog": len(consumer.dispatcher.mailbox),
        "max_backlog": box.max_backlog,
        "marks_conflated": box.marks_conflated,
        "latency_p50_ms": percentile(samples, 50) * 1000,
        "latency_p99_ms": percentile(samples, 99) * 1000,
        "latency_max_ms": consumer.stats.max_latency_s * 1000,
    }
