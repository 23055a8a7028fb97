"""The market-data hub: tickers for the union of the workers' demand, each mark change to the
bus as `bybit.marks.{SYMBOL}` (last value per subject, msg-id dedupe for hot-hot hubs).

It reuses the product's machinery unchanged: a `HubCore` (public sockets, shards, subscription
retries, ticker merging) run by the `StreamRunner`; this module only adds the bus around it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from decimal import Decimal
from typing import Any

import msgspec
from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.js.client import JetStreamContext
from nats.js.errors import NoKeysError
from nats.js.kv import KeyValue

from bybit_hybrid.bus.core import HubCore
from bybit_hybrid.bus.payloads import BusMark, HubBeat, decode_demand, encode
from bybit_hybrid.bus.settings import BusSettings
from bybit_hybrid.bus.setup import connect, declare_all
from bybit_hybrid.bus.subjects import HUB_HEARTBEAT, check_symbol, mark_msg_id, mark_subject
from bybit_hybrid.protocol.hybrid import CoreEvent, HybridConfig
from bybit_hybrid.protocol.session import StateChanged
from bybit_hybrid.transport.endpoints import Endpoints
from bybit_hybrid.transport.rest import BybitRestClient
from bybit_hybrid.transport.runner import StreamRunner
from bybit_hybrid.transport.ws import AnyWsBackend, ws_backend_named
from bybit_hybrid.wire.signing import Credentials

log = logging.getLogger(__name__)


def default_hub_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class MarkHub:
    """See the module docstring. `start()` connects the bus first: a hub without it is useless."""

    def __init__(
        self,
        endpoints: Endpoints,
        bus: BusSettings,
        *,
        hub_id: str | None = None,
        config: HybridConfig | None = None,
        ws_backend: AnyWsBackend | None = None,
    ) -> None:
        self.endpoints = endpoints
        self.bus = bus
        self.hub_id = hub_id or default_hub_id()
        self._config = config
        self._ws_backend = ws_backend
        self._owned_ws: AnyWsBackend | None = None
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._kv: KeyValue | None = None
        self._core: HubCore | None = None
        self._runner: StreamRunner | None = None
        self._rest: BybitRestClient | None = None
        # Conflated per symbol: under a backlog the newest mark wins, as in the mailbox.
        self._pending: dict[str, BusMark] = {}
        self._wake = asyncio.Event()
        self._redeclare = False
        self._by_account: dict[str, set[str]] = {}
        self._watched_at: dict[str, float] = {}  # monotonic, per demand key
        self._tasks: list[asyncio.Task[None]] = []
        self.stats = {"marks_published": 0, "duplicates": 0, "publish_errors": 0, "bad_demand": 0}

    @property
    def core(self) -> HubCore:
        if self._core is None:
            raise RuntimeError("hub is not started")
        return self._core

    def demand(self) -> frozenset[str]:
        return self.core.demand

    async def start(self) -> None:
        self._nc = await connect(
            self.bus, f"bybit-hybrid-hub-{self.hub_id}", reconnected_cb=self._on_reconnected
        )
        self._js = self._nc.jetstream()
        self._kv = await declare_all(self._js, self.bus)
        self._core = HubCore(self._on_mark, self._config)
        # The runner wants a REST client; the hub's core never asks it for anything.
        self._rest = BybitRestClient(self.endpoints.rest_url, Credentials("hub", "no-key"))
        ws = self._ws_backend
        if ws is None:
            ws = self._owned_ws = ws_backend_named("picows")
        self._runner = StreamRunner(self._core, self.endpoints, self._rest, ws, self._on_events)
        await self._runner.start()
        for coro, name in (
            (self._publish_loop(), "publish"),
            (self._demand_loop(), "demand"),
            (self._watch_loop(), "watch"),
            (self._heartbeat_loop(), "heartbeat"),
        ):
            self._tasks.append(asyncio.create_task(coro, name=f"bybit-hub-{name}"))
        log.info("hub %s: on %s, bus %s", self.hub_id, self.endpoints.name, self.bus.masked())

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self._runner is not None:
            await self._runner.stop()
        if self._owned_ws is not None:
            await self._owned_ws.aclose()
        if self._rest is not None:
            await self._rest.close()
        if self._nc is not None:
            with contextlib.suppress(Exception):
                await self._nc.close()
        self._runner = self._rest = self._nc = self._owned_ws = None

    def health(self) -> tuple[bool, list[str]]:
        """Healthy: on the bus, and every public socket live (or nothing demanded yet)."""
        status = self.status()
        reasons = [] if status["bus_connected"] else ["bus disconnected"]
        if status["demand"]:
            reasons += [
                f"{name} {state}" for name, state in status["sockets"].items() if state != "live"
            ]
        return not reasons, reasons

    def status(self) -> dict[str, Any]:
        core = self._core
        return {
            "hub": self.hub_id,
            "endpoints": self.endpoints.name,
            "bus": self.bus.masked(),
            "bus_connected": self._nc is not None and self._nc.is_connected,
            "demand": sorted(core.demand) if core else [],
            "subscribed_tickers": core.subscribed_tickers() if core else 0,
            "sockets": {n: core.session(n).state.value for n in core.sockets()} if core else {},
            "public_sockets": len(core.sockets()) if core else 0,
            **self.stats,
        }

    # --- marks out ---------------------------------------------------------------------------

    def _on_mark(self, symbol: str, mark: Decimal, ts_ms: int, cs: int | None) -> None:
        rx_us = time.time_ns() // 1000
        self._pending[symbol] = BusMark(symbol, mark, ts_ms, cs, self.hub_id, rx_us)
        self._wake.set()

    async def _publish_loop(self) -> None:
        assert self._js is not None
        js = self._js
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._pending = list(self._pending.values()), {}
            results = await asyncio.gather(
                *(self._publish(js, mark) for mark in batch), return_exceptions=True
            )
            failed = False
            for mark, result in zip(batch, results, strict=True):
                if isinstance(result, BaseException):
                    failed = True
                    self.stats["publish_errors"] += 1
                    log.warning("hub: publishing %s failed: %s", mark.symbol, result)
                    # Keep it unless a newer one is already waiting: the bus is down or slow.
                    self._pending.setdefault(mark.symbol, mark)
            if failed:
                # Only a failed publish waits: marks that arrived meanwhile go out at once.
                await asyncio.sleep(min(0.5, self.bus.heartbeat_s))
                self._wake.set()
            elif self._pending:
                self._wake.set()

    async def _publish(self, js: JetStreamContext, mark: BusMark) -> None:
        msg_id = mark_msg_id(mark.symbol, mark.cs, mark.ts_ms)
        ack = await js.publish(
            mark_subject(mark.symbol),
            encode(mark),
            timeout=self.bus.connect_timeout_s,
            headers={"Nats-Msg-Id": msg_id},
        )
        if ack.duplicate:
            self.stats["duplicates"] += 1  # the other hub was first: expected when hot-hot
        else:
            self.stats["marks_published"] += 1

    # --- demand in ---------------------------------------------------------------------------

    async def _on_reconnected(self) -> None:
        self._redeclare = True  # the server may have restarted without our streams

    async def _demand_loop(self) -> None:
        """The whole bucket every `demand_refresh_s`: that is how expired entries leave."""
        while True:
            try:
                if self._redeclare:
                    assert self._js is not None
                    self._kv = await declare_all(self._js, self.bus)
                    self._redeclare = False
                started = time.monotonic()
                self._merge_poll(await self.read_demand(), started)
            except NatsError as exc:
                log.warning("hub: reading demand failed (keeping the last): %s", exc)
            else:
                self._apply_demand()
            await asyncio.sleep(self.bus.demand_refresh_s)

    async def _watch_loop(self) -> None:
        """Puts and deletes as they happen: a new symbol is subscribed at once."""
        while True:
            try:
                assert self._kv is not None
                watcher = await self._kv.watchall()
                try:
                    async for entry in watcher:
                        if entry is None:
                            continue  # nats-py's "no pending updates" marker
                        self._watched_at[entry.key] = time.monotonic()
                        if entry.operation in ("DEL", "PURGE") or entry.value is None:
                            self._by_account.pop(entry.key, None)
                        else:
                            self._by_account[entry.key] = self._symbols_of(entry.key, entry.value)
                        self._apply_demand()
                finally:
                    with contextlib.suppress(Exception):
                        await watcher.stop()  # type: ignore[no-untyped-call]
            except NatsError as exc:
                log.debug("hub: demand watch ended, the poll covers: %s", exc)
            await asyncio.sleep(self.bus.demand_refresh_s)

    def _merge_poll(self, polled: dict[str, set[str]], started: float) -> None:
        """The poll is the truth for every key the watcher has not updated since it began
        (a put seen meanwhile is newer than what the poll read)."""
        for key in self._by_account.keys() | polled.keys():
            if self._watched_at.get(key, -1.0) >= started:
                continue
            if key in polled:
                self._by_account[key] = polled[key]
            else:
                self._by_account.pop(key, None)
                self._watched_at.pop(key, None)

    def _apply_demand(self) -> None:
        assert self._core is not None and self._runner is not None
        symbols: set[str] = set().union(*self._by_account.values())
        if symbols != self._core.demand:
            log.info("hub: demand now %d symbols", len(symbols))
            self._core.set_demand(symbols, time.time())
            self._runner.pump()

    async def read_demand(self) -> dict[str, set[str]]:
        """Every live worker's symbols (expired entries are gone from the bucket)."""
        assert self._kv is not None
        try:
            keys = await self._kv.keys()
        except NoKeysError:
            return {}
        demand: dict[str, set[str]] = {}
        for key in keys:
            try:
                entry = await self._kv.get(key)
            except NatsError:
                continue  # deleted or expired between keys() and get()
            if entry.value is not None:
                demand[key] = self._symbols_of(key, entry.value)
        return demand

    def _symbols_of(self, key: str, raw: bytes) -> set[str]:
        try:
            demand = decode_demand(raw)
            return {check_symbol(s) for s in demand.symbols}
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
            self.stats["bad_demand"] += 1
            log.warning("hub: demand entry %r ignored: %s", key, exc)
            return set()

    async def _heartbeat_loop(self) -> None:
        assert self._nc is not None and self._core is not None
        while True:
            beat = HubBeat(
                self.hub_id, len(self._core.demand), int(time.time() * 1000), self._live()
            )
            with contextlib.suppress(NatsError):
                await self._nc.publish(HUB_HEARTBEAT, encode(beat))
            await asyncio.sleep(self.bus.heartbeat_s)

    def _live(self) -> list[str]:
        """The demanded symbols whose tickers this hub heard within the staleness bound."""
        core, now = self.core, time.time()  # the runner's clock
        live = []
        for symbol in sorted(core.demand):
            heard = core.ticker_heard_at(symbol)
            if heard is not None and now - heard < self.bus.stale_after_s:
                live.append(symbol)
        return live

    def _on_events(self, events: list[CoreEvent]) -> None:
        for event in events:
            if isinstance(event, StateChanged):
                log.info("hub %s: %s -> %s", event.connection, event.old.value, event.new.value)
