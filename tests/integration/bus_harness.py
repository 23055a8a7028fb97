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
from bybit_hybrid.bus.worker import BusHybridStream
from bybit_hybrid.sim import ConnKind, SimServer
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
) -> tuple[BusHybridStream, Recorder]:
    rec = rec or Recorder()
    stream = BusHybridStream(
        sim.api_key,
        sim.api_secret,
        rec.handler,
        base_url=sim.base_url,
        config=CONFIG,
        rng=random.Random(7),
        bus=bus,
        account=account,
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
