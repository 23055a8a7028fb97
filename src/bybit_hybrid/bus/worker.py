"""The account worker: a `BybitHybridStream` given `bus_url=` takes its marks from the bus,
puts its demand on the bus, publishes its position events, and brings its own public sockets
back when the bus goes stale.

    stream = BybitHybridStream(key, secret, handler, bus_url="nats://127.0.0.1:4222",
                               bus_account="main")

`BusWorker` is the part the stream composes (it is built only when `bus_url` is given, so
nats-py is not even imported otherwise). Private socket, REST bootstrap/reconcile and
protection are as in the single-process stream. Health: the NATS connection is up and some
hub's heartbeat is younger than `stale_after_s`. Unhealthy that long, the worker subscribes its
own public sockets for its open symbols (`mode: fallback`); healthy again for `stale_after_s`,
it retires them (`mode: bus`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import Error as NatsError
from nats.js.client import JetStreamContext
from nats.js.errors import NotFoundError
from nats.js.kv import KeyValue

from bybit_hybrid.bus.core import WorkerCore
from bybit_hybrid.bus.payloads import BusMark, Demand, decode_beat, decode_mark, encode
from bybit_hybrid.bus.publisher import PositionPublisher
from bybit_hybrid.bus.settings import BusSettings
from bybit_hybrid.bus.setup import connect, declare_all
from bybit_hybrid.bus.subjects import HUB_HEARTBEAT, MARKS_STREAM, check_account, mark_subject
from bybit_hybrid.protocol.alerts import AlertCleared, AlertRaised, Severity
from bybit_hybrid.protocol.events import PositionClosed, PositionOpened
from bybit_hybrid.protocol.hybrid import CoreEvent, HybridCore, Reconciled

log = logging.getLogger(__name__)

BUS, FALLBACK = "bus", "fallback"
# Raised (and cleared) to every listener: metrics count it, the dashboard shows it.
BUS_ALERT = "bus_fallback"
_FELL_BACK = "no healthy hub on the bus: marks from this account's own public socket"
_RETURNED = "marks from the bus again"


class StreamHost(Protocol):
    """What the worker needs of the stream that composes it (`BybitHybridStream`)."""

    @property
    def core(self) -> HybridCore: ...

    def apply(self, feed: Callable[[HybridCore, float], None]) -> None: ...

    def add_listener(self, listener: Callable[[CoreEvent], None]) -> None: ...

    def now(self) -> float: ...


class BusWorker:
    """See the module docstring. `notify` hands an event to every listener of the stream."""

    def __init__(
        self,
        host: StreamHost,
        bus: BusSettings | str,
        account: str | None,
        notify: Callable[[CoreEvent], None],
    ) -> None:
        if account is None:
            raise ValueError("bus_url needs bus_account: the account's name on the bus")
        self.bus = bus if isinstance(bus, BusSettings) else BusSettings(bus)
        self.account = check_account(account)
        self._host = host
        self._notify = notify
        self.publisher = PositionPublisher(self.account)
        host.add_listener(self.publisher.listener)
        host.add_listener(self._on_core_event)
        # Set when a position opens or closes: the demand goes out now, not at the next tick.
        self._demand_moved = asyncio.Event()
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._kv: KeyValue | None = None
        self._subs: dict[str, Subscription] = {}
        self._resubscribe = False
        self._unreachable = False
        self._task: asyncio.Task[None] | None = None
        self._last_beat_at: float | None = None  # monotonic
        self._healthy = False
        self._demand_sent: tuple[frozenset[str], float] | None = None
        self._marks_in: list[BusMark] = []
        self.failovers = 0
        self.bus_marks = 0
        self.bad_bus_marks = 0
        self._reset()

    def _reset(self) -> None:
        """The state of a new run (before each start)."""
        self.mode = BUS
        self._bootstrapped = self._closes_checked = False
        self._health_changed_at = time.monotonic()

    def new_core(self, *args: Any) -> HybridCore:
        """The stream's core for a run: `WorkerCore(credentials, config, rng)`."""
        return WorkerCore(*args)

    @property
    def core(self) -> WorkerCore:
        core = self._host.core
        assert isinstance(core, WorkerCore)
        return core

    @property
    def running(self) -> bool:
        return self._task is not None

    def start(self) -> None:
        """Called by the stream once its runner is up."""
        self._task = asyncio.create_task(self._loop(), name=f"bybit-bus-worker-{self.account}")

    async def stop(self) -> None:
        """Called by the stream before its runner stops; never raises."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await self.publisher.stop()
        if self._kv is not None and self._nc is not None and self._nc.is_connected:
            # Withdraw the demand now rather than when its TTL runs out.
            with contextlib.suppress(NatsError, TimeoutError):
                await self._kv.delete(self.account)
        await self._drop_subscriptions()
        if self._nc is not None:
            with contextlib.suppress(Exception):
                await self._nc.close()
        self._nc = self._js = self._kv = None
        self._reset()

    # --- status ------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        beat_age = None if self._last_beat_at is None else time.monotonic() - self._last_beat_at
        return {
            "url": self.bus.masked(),
            "account": self.account,
            "mode": self.mode,
            "connected": self._nc is not None and self._nc.is_connected,
            "hub_heartbeat_age_s": None if beat_age is None else round(beat_age, 3),
            "failovers": self.failovers,
            "mark_subjects": len(self._subs),
            "own_socket_symbols": self._own_symbols(),
            "marks_received": self.bus_marks,
            "bad_marks": self.bad_bus_marks,
            "events_backlog": self.publisher.backlog,
            **{f"events_{k}": v for k, v in self.publisher.stats.items()},
        }

    def _own_symbols(self) -> list[str]:
        """Symbols on the own socket while the rest come from the bus (per-symbol staleness)."""
        if not self.running:
            return []
        return sorted(self.core.own_symbols)

    def stats(self) -> dict[str, Any]:
        """The worker's part of the stream's `get_stats()`."""
        return {"bus_fallback": self.mode == FALLBACK, "bus_failovers": self.failovers}

    # --- the loop ---------------------------------------------------------------------------

    async def _loop(self) -> None:
        period_s = min(self.bus.heartbeat_s, self.bus.stale_after_s / 4)
        while True:
            try:
                await self._step()
            except (NatsError, TimeoutError) as exc:
                log.debug("bus: %s", exc)
            except Exception:
                log.exception("bus worker step failed")
            self._judge_health()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(period_s):
                    await self._demand_moved.wait()
            self._demand_moved.clear()

    async def _step(self) -> None:
        if self._nc is None:
            await self._connect()
        if self._nc is None or not self._nc.is_connected:
            return
        if self._resubscribe:
            assert self._js is not None
            self._kv = await declare_all(self._js, self.bus)
            self._resubscribe = False
            await self._drop_subscriptions()
        wanted = frozenset(self._host.core.book.open_symbols())
        await self._send_demand(wanted)
        await self._sync_subscriptions(wanted)
        self.core.bus_subjects = len(self._subs)
        await self._check_closes()

    def _on_core_event(self, event: CoreEvent) -> None:
        if isinstance(event, PositionOpened | PositionClosed):
            self._demand_moved.set()
        if isinstance(event, Reconciled) and event.reason == "bootstrap":
            self._bootstrapped = True

    async def _check_closes(self) -> None:
        """Once per start: closes that happened while this account's worker was down."""
        if self._closes_checked or self.publisher.restored is None:
            return  # the publisher reads the bus's record first
        if self._bootstrapped:
            self.publisher.close_missing(self._host.core.book.open_keys())
            self._closes_checked = True

    async def _connect(self) -> None:
        try:
            nc = await connect(
                self.bus,
                f"bybit-hybrid-worker-{self.account}",
                reconnected_cb=self._on_reconnected,
            )
        except (NatsError, OSError, TimeoutError) as exc:
            # One warning per outage, not one per attempt.
            level = logging.DEBUG if self._unreachable else logging.WARNING
            log.log(level, "bus %s unreachable: %r", self.bus.masked(), exc)
            self._unreachable = True
            return
        self._unreachable = False
        js = nc.jetstream()
        self._kv = await declare_all(js, self.bus)
        await nc.subscribe(HUB_HEARTBEAT, cb=self._on_beat)
        self._nc, self._js = nc, js
        self.publisher.start(js)
        log.info("bus: worker %s on %s", self.account, self.bus.masked())

    async def _on_reconnected(self) -> None:
        # The server may have restarted: consumers are gone, the streams may be new.
        self._resubscribe = True
        self._demand_sent = None

    async def _on_beat(self, msg: Msg) -> None:
        try:
            beat = decode_beat(msg.data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.warning("bus: bad hub heartbeat ignored: %s", exc)
            return
        self._last_beat_at = time.monotonic()
        if beat.live and self.running:
            self._host.apply(lambda core, now: _heard(core, beat.live, now))

    async def _send_demand(self, wanted: frozenset[str]) -> None:
        assert self._kv is not None
        now = time.monotonic()
        sent = self._demand_sent
        if sent is not None and sent[0] == wanted and now - sent[1] < self.bus.heartbeat_s:
            return
        demand = Demand(self.account, sorted(wanted), int(time.time() * 1000))
        await self._kv.put(self.account, encode(demand))
        self._demand_sent = (wanted, now)

    async def _sync_subscriptions(self, wanted: frozenset[str]) -> None:
        """Per symbol: a plain NATS subscription to its subject, which the server hands each
        mark as the hub publishes it (no JetStream consumer in the hop), then the stream's last
        value read once, so a late joiner has the current mark at once. Whichever of the two
        arrives first, the mark cache keeps the newer (cs, ts)."""
        assert self._nc is not None and self._js is not None
        for symbol in sorted(self._subs.keys() - wanted):
            sub = self._subs.pop(symbol)
            with contextlib.suppress(NatsError):
                await sub.unsubscribe()
        added = sorted(wanted - self._subs.keys())
        for symbol in added:
            self._subs[symbol] = await self._nc.subscribe(mark_subject(symbol), cb=self._on_mark)
        await asyncio.gather(*(self._read_last(symbol) for symbol in added))

    async def _read_last(self, symbol: str) -> None:
        assert self._js is not None
        try:
            last = await self._js.get_last_msg(MARKS_STREAM, mark_subject(symbol))
        except NotFoundError:
            return  # no hub has published this symbol yet: its first mark comes live
        if last.data is not None:
            self._take_mark(last.data, last.subject or symbol)

    async def _drop_subscriptions(self) -> None:
        subs, self._subs = list(self._subs.values()), {}
        if self.running:
            self.core.bus_subjects = 0
        for sub in subs:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def _on_mark(self, msg: Msg) -> None:
        self._take_mark(msg.data, msg.subject)

    def _take_mark(self, data: bytes, subject: str) -> None:
        try:
            mark = decode_mark(data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            self.bad_bus_marks += 1
            log.warning("bus: bad mark on %s ignored: %s", subject, exc)
            return
        self.bus_marks += 1
        if not self.running:
            return
        # Marks read together (a hub publishes a frame burst at once) are applied together:
        # one pass of the core's outputs for the lot, not one per mark.
        if not self._marks_in:
            asyncio.get_running_loop().call_soon(self._apply_marks)
        self._marks_in.append(mark)

    def _apply_marks(self) -> None:
        marks, self._marks_in = self._marks_in, []
        if marks and self.running:
            self._host.apply(lambda core, now: _feed(core, marks, now))

    # --- health and failover -----------------------------------------------------------------

    def _judge_health(self) -> None:
        now = time.monotonic()
        beat = self._last_beat_at
        healthy = (
            self._nc is not None
            and self._nc.is_connected
            and beat is not None
            and now - beat < self.bus.stale_after_s
        )
        if healthy != self._healthy:
            self._healthy, self._health_changed_at = healthy, now
        if self.running and healthy and self.mode == BUS:
            stale_s = self.bus.stale_after_s
            self._host.apply(lambda core, now: _judge_symbols(core, stale_s, now))
        if now - self._health_changed_at < self.bus.stale_after_s or not self.running:
            return
        if not healthy and self.mode == BUS:
            self.mode = FALLBACK
            self.failovers += 1
            log.warning(
                "bus: no healthy hub for %.1fs: %s falls back to its own public socket",
                now - self._health_changed_at,
                self.account,
            )
            self._host.apply(lambda core, now: _switch(core, public=True, now=now))
            self._notify(AlertRaised(BUS_ALERT, Severity.WARNING, _FELL_BACK, self._host.now()))
        elif healthy and self.mode == FALLBACK:
            self.mode = BUS
            log.warning("bus: healthy again: %s takes its marks from the bus", self.account)
            self._host.apply(lambda core, now: _switch(core, public=False, now=now))
            self._notify(AlertCleared(BUS_ALERT, Severity.WARNING, _RETURNED, self._host.now()))


def _feed(core: HybridCore, marks: list[BusMark], now: float) -> None:
    assert isinstance(core, WorkerCore)
    for mark in marks:
        core.on_bus_mark(mark.symbol, mark.mark_price, mark.ts_ms, mark.cs, now)


def _heard(core: HybridCore, symbols: list[str], now: float) -> None:
    assert isinstance(core, WorkerCore)
    core.note_bus_heard(symbols, now)


def _judge_symbols(core: HybridCore, stale_after_s: float, now: float) -> None:
    assert isinstance(core, WorkerCore)
    for symbol, own in core.judge_bus_symbols(stale_after_s, now):
        if own:
            log.warning(
                "bus: no mark or hub has shown %s alive for %.1fs: its own ticker subscription",
                symbol,
                stale_after_s,
            )
        else:
            log.warning("bus: %s is served by the bus again", symbol)


def _switch(core: HybridCore, *, public: bool, now: float) -> None:
    assert isinstance(core, WorkerCore)
    if public:
        core.use_public(now)
    else:
        core.use_bus(now)
