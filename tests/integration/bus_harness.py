"""Helpers for the bus tests: hubs and workers against the simulator and a real nats-server."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import nats
from nats.aio.client import Client

from bybit_hybrid.bus.hub import MarkHub
from bybit_hybrid.bus.payloads import BusMark, decode_mark
from bybit_hybrid.bus.settings import BusSettings
from bybit_hybrid.sim import ConnKind, SimServer
from bybit_hybrid.stream import BybitHybridStream
from bybit_hybrid.transport.endpoints import Endpoints
from tests.integration.stream_harness import CONFIG, Recorder
from tests.support import UNIT_S

D = Decimal


def fast_bus(url: str, **overrides: Any) -> BusSettings:
    """Short TTLs and staleness bounds, scaled from the test unit."""
    values: dict[str, Any] = {
        "demand_ttl_s": 2.0 * UNIT_S,
        "heartbeat_s": 0.2 * UNIT_S,
        "stale_after_s": 1.0 * UNIT_S,
        "demand_refresh_s": 0.1 * UNIT_S,
        "connect_timeout_s": 1.0 * UNIT_S,
    }
    values.update(overrides)
    return BusSettings(url, **values)


def hub_for(sim: SimServer, bus: BusSettings, hub_id: str) -> MarkHub:
    return MarkHub(Endpoints.select(base_url=sim.base_url), bus, hub_id=hub_id, config=CONFIG)


def worker_for(
    sim: SimServer, bus: BusSettings, account: str, rec: Recorder | None = None
) -> tuple[BybitHybridStream, Recorder]:
    rec = rec or Recorder()
    stream = BybitHybridStream(
        sim.api_key,
        sim.api_secret,
        rec.handler,
        base_url=sim.base_url,
        config=CONFIG,
        rng=random.Random(7),
        bus_url=bus,
        bus_account=account,
    )
    stream.add_listener(rec.listener)
    return stream, rec


def public_topics(sim: SimServer) -> list[set[str]]:
    """The ticker topics of each public connection the simulator holds (its own truth)."""
    return [set(c.topics) for c in sim.connections if c.kind is ConnKind.PUBLIC]


@asynccontextmanager
async def nats_client(url: str) -> AsyncIterator[Client]:
    nc = await nats.connect(url, connect_timeout=2 * UNIT_S)
    try:
        yield nc
    finally:
        await nc.close()


def marks_of(raw: list[bytes]) -> list[BusMark]:
    return [decode_mark(r) for r in raw]


class BusRig:
    """One test's hubs, workers and NATS clients against `sim` and a real nats-server; every
    one started here is stopped (workers first) by `close()`, so a test holds no teardown."""

    def __init__(self, sim: SimServer, nats_server: Any) -> None:
        self.sim = sim
        self.nats_server = nats_server
        self.bus = fast_bus(nats_server.url)  # a test may replace it before starting anything
        self._workers: list[BybitHybridStream] = []
        self._hubs: list[MarkHub] = []
        self._clients: list[Client] = []

    @property
    def url(self) -> str:
        return str(self.nats_server.url)

    async def hub(self, hub_id: str = "hub-a", *, start: bool = True) -> MarkHub:
        hub = hub_for(self.sim, self.bus, hub_id)
        self._hubs.append(hub)
        if start:
            await hub.start()
        return hub

    async def worker(
        self, account: str = "alice", *, ready: bool = True
    ) -> tuple[BybitHybridStream, Recorder]:
        """A started account worker (bootstrapped, with `ready`) and its recorder."""
        stream, rec = worker_for(self.sim, self.bus, account)
        self._workers.append(stream)
        await stream.start()
        if ready:
            await stream.wait_ready(3 * UNIT_S)
        return stream, rec

    async def restart(self, stream: BybitHybridStream) -> tuple[BybitHybridStream, Recorder]:
        """Stops `stream` and starts a new worker for the same account (a process restart)."""
        await stream.stop()
        assert stream.bus is not None
        return await self.worker(stream.bus.account)

    async def client(self) -> Client:
        nc = await nats.connect(self.url, connect_timeout=2 * UNIT_S)
        self._clients.append(nc)
        return nc

    async def close(self) -> None:
        for stream in self._workers:
            await stream.stop()
        for hub in self._hubs:
            await hub.stop()
        for nc in self._clients:
            await nc.close()
