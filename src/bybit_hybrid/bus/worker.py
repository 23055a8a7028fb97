"""The account worker: `BybitHybridStream` with its marks from the bus, its demand on the bus,
its position events published, and its own public sockets back when the bus goes stale.

    stream = BusHybridStream(key, secret, handler, bus="nats://127.0.0.1:4222", account="main")

Private socket, REST bootstrap/reconcile and protection are as in the single-process stream.
Health: the NATS connection is up and some hub's heartbeat is younger than `stale_after_s`.
Unhealthy that long, the worker subscribes its own public sockets for its open symbols
(`mode: fallback`); healthy again for `stale_after_s`, it retires them (`mode: bus`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import Error as NatsError
from nats.js.api import DeliverPolicy
from nats.js.client import JetStreamContext
from nats.js.kv import KeyValue

from bybit_hybrid.bus.core import WorkerCore
from bybit_hybrid.bus.payloads import BusMark, Demand, decode_mark, encode
from bybit_hybrid.bus.publisher import PositionPublisher
from bybit_hybrid.bus.settings import BusSettings
from bybit_hybrid.bus.setup import connect, declare_all
from bybit_hybrid.bus.subjects import HUB_HEARTBEAT, check_account, mark_subject
from bybit_hybrid.protocol.alerts import AlertCleared, AlertRaised, Severity
from bybit_hybrid.protocol.events import PositionClosed, PositionOpened
from bybit_hybrid.protocol.hybrid import CoreEvent, HybridCore, Reconciled
from bybit_hybrid.stream import BybitHybridStream

log = logging.getLogger(__name__)

BUS, FALLBACK = "bus", "fallback"
# Raised (and cleared) to every listener: metrics count it, the dashboard shows it.
BUS_ALERT = "bus_fallback"
_FELL_BACK = "no healthy hub on the bus: marks from this account's own public socket"
_RETURNED = "marks from the bus again"


class BusHybridStream(BybitHybridStream):
    """See the module docstring; every other argument is `BybitHybridStream`'s."""

    def __init__(self, *args: Any, bus: BusSettings | str, account: str, **kwargs: Any) -> None:
        if kwargs.get("recorder") is not None:
            raise ValueError("recording is not supported for a bus worker (record without --bus)")
        super().__init__(*args, **kwargs)
        if self._config.stream_symbol is not None:
            raise ValueError("a bus worker streams every symbol (no cutover share)")
        self.bus = bus if isinstance(bus, BusSettings) else BusSettings(bus)
        self.account = check_account(account)
        self.publisher = PositionPublisher(self.account)
        self.add_listener(self.publisher.listener)
        self.add_listener(self._on_core_event)
        self._bootstrapped = False
        # Set when a position opens or closes: the demand goes out now, not at the next tick.
        self._demand_moved = asyncio.Event()
        self._closes_checked = False
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._kv: KeyValue | None = None
        self._subs: dict[str, Subscription] = {}
        self._resubscribe = False
        self._unreachable = False
        self._task: asyncio.Task[None] | None = None
        self._last_beat_at: float | None = None  # monotonic
        self._health_changed_at = time.monotonic()
        self._healthy = False
        self._demand_sent: tuple[frozenset[str], float] | None = None
        self.mode = BUS
        self.failovers = 0
        self.bus_marks = 0
        self.bad_bus_marks = 0

    def _new_core(self) -> HybridCore:
        return WorkerCore(self._credentials, self._config, self._rng)

    @property
    def worker_core(self) -> WorkerCore:
        core = self.core
        assert isinstance(core, WorkerCore)
        return core

    async def start(self) -> None:
        self.mode = BUS
        self._bootstrapped = self._closes_checked = False
        self._health_changed_at = time.monotonic()
        await super().start()
        self._task = asyncio.create_task(self._loop(), name=f"bybit-bus-worker-{self.account}")

    async def stop(self) -> None:
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
        await super().stop()

    # --- status ------------------------------------------------------------------------------

    def bus_status(self) -> dict[str, Any]:
        beat_age = None if self._last_beat_at is None else time.monotonic() - self._last_beat_at
        return {
            "url": self.bus.masked(),
            "account": self.account,
            "mode": self.mode,
            "connected": self._nc is not None and self._nc.is_connected,
            "hub_heartbeat_age_s": None if beat_age is None else round(beat_age, 3),
            "failovers": self.failovers,
            "mark_subjects": len(self._subs),
            "marks_received": self.bus_marks,
            "bad_marks": self.bad_bus_marks,
            "events_backlog": self.publisher.backlog,
            **{f"events_{k}": v for k, v in self.publisher.stats.items()},
        }

    def get_status(self) -> dict[str, Any]:
        status = super().get_status()
        status["bus"] = self.bus_status()
        return status

    def get_stats(self) -> dict[str, Any]:
        stats = super().get_stats()
        stats["bus_fallback"] = self.mode == FALLBACK
        stats["bus_failovers"] = self.failovers
        return stats

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
        wanted = frozenset(self.core.book.open_symbols())
        await self._send_demand(wanted)
        await self._sync_subscriptions(wanted)
        self.worker_core.bus_subjects = len(self._subs)
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
            self.publisher.close_missing(self.core.book.open_keys())
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

    async def _on_beat(self, _msg: Msg) -> None:
        self._last_beat_at = time.monotonic()

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
        assert self._js is not None
        for symbol in sorted(self._subs.keys() - wanted):
            sub = self._subs.pop(symbol)
            with contextlib.suppress(NatsError):
                await sub.unsubscribe()
        for symbol in sorted(wanted - self._subs.keys()):
            # The last value at once (a late joiner), then every change.
            self._subs[symbol] = await self._js.subscribe(
                mark_subject(symbol),
                cb=self._on_mark,
                ordered_consumer=True,
                deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
            )

    async def _drop_subscriptions(self) -> None:
        subs, self._subs = list(self._subs.values()), {}
        if self._core is not None:
            self.worker_core.bus_subjects = 0
        for sub in subs:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def _on_mark(self, msg: Msg) -> None:
        try:
            mark = decode_mark(msg.data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            self.bad_bus_marks += 1
            log.warning("bus: bad mark on %s ignored: %s", msg.subject, exc)
            return
        self.bus_marks += 1
        if self._runner is None:
            return
        self.apply(lambda core, now: _feed(core, mark, now))

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
        if now - self._health_changed_at < self.bus.stale_after_s or self._runner is None:
            return
        if not healthy and self.mode == BUS:
            self.mode = FALLBACK
            self.failovers += 1
            log.warning(
                "bus: no healthy hub for %.1fs: %s falls back to its own public socket",
                now - self._health_changed_at,
                self.account,
            )
            self.apply(lambda core, now: _switch(core, public=True, now=now))
            self._fanout.notify(AlertRaised(BUS_ALERT, Severity.WARNING, _FELL_BACK, self.now()))
        elif healthy and self.mode == FALLBACK:
            self.mode = BUS
            log.warning("bus: healthy again: %s takes its marks from the bus", self.account)
            self.apply(lambda core, now: _switch(core, public=False, now=now))
            self._fanout.notify(AlertCleared(BUS_ALERT, Severity.WARNING, _RETURNED, self.now()))


def _feed(core: HybridCore, mark: BusMark, now: float) -> None:
    assert isinstance(core, WorkerCore)
    core.on_bus_mark(mark.symbol, mark.mark_price, mark.ts_ms, mark.cs, now)


def _switch(core: HybridCore, *, public: bool, now: float) -> None:
    assert isinstance(core, WorkerCore)
    if public:
        core.use_public(now)
    else:
        core.use_bus(now)
