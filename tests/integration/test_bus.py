"""The NATS JetStream scale-out against a real nats-server and the simulator: demand union and
expiry, the last-value marks stream, hot-hot hubs, position replay, bus-outage fallback."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from nats.aio.msg import Msg
from nats.js.api import DeliverPolicy
from nats.js.errors import KeyNotFoundError

from bybit_hybrid.bus.payloads import Demand, decode_mark, encode
from bybit_hybrid.bus.setup import ensure_demand_bucket
from bybit_hybrid.bus.subjects import DEMAND_BUCKET, MARKS_STREAM
from bybit_hybrid.sim import SimServer
from tests.integration.bus_harness import (
    fast_bus,
    hub_for,
    nats_client,
    public_topics,
    worker_for,
)
from tests.integration.nats_support import NatsServer
from tests.support import UNIT_S, wait_for

D = Decimal


async def test_hub_subscribes_the_union_of_demand_and_drops_expired_entries(
    sim: SimServer, nats_server: NatsServer
) -> None:
    bus = fast_bus(nats_server.url)
    hub = hub_for(sim, bus, "hub-a")
    await hub.start()
    try:
        async with nats_client(nats_server.url) as nc:
            kv = await ensure_demand_bucket(nc.jetstream(), bus)
            await kv.put("alice", encode(Demand("alice", ["BTCUSDT", "ETHUSDT"], 0)))
            await kv.put("bob", encode(Demand("bob", ["ETHUSDT", "SOLUSDT"], 0)))
            union = {"tickers.BTCUSDT", "tickers.ETHUSDT", "tickers.SOLUSDT"}
            await wait_for(
                lambda: set().union(*public_topics(sim)) == union, 5 * UNIT_S, "the union"
            )
            # bob keeps his heartbeat, alice stops: only her entry expires (bucket TTL).
            for _ in range(int(bus.demand_ttl_s / bus.heartbeat_s) + 10):
                await kv.put("bob", encode(Demand("bob", ["ETHUSDT", "SOLUSDT"], 0)))
                if set().union(*public_topics(sim)) == {"tickers.ETHUSDT", "tickers.SOLUSDT"}:
                    break
                await asyncio.sleep(bus.heartbeat_s)
            assert set().union(*public_topics(sim)) == {"tickers.ETHUSDT", "tickers.SOLUSDT"}
            try:
                await kv.get("alice")
                raise AssertionError("alice's demand should have expired")
            except KeyNotFoundError:
                pass
            # A malformed entry is ignored and counted, the rest still served.
            await kv.put("mallory", b"{not json")
            await wait_for(lambda: hub.stats["bad_demand"] > 0, 3 * UNIT_S, "bad demand")
            assert hub.demand() >= {"ETHUSDT", "SOLUSDT"}
    finally:
        await hub.stop()


async def test_worker_takes_marks_from_the_bus_and_opens_no_public_socket(
    sim: SimServer, nats_server: NatsServer
) -> None:
    bus = fast_bus(nats_server.url)
    hub = hub_for(sim, bus, "hub-a")
    await hub.start()
    worker, rec = worker_for(sim, bus, "alice")
    await worker.start()
    try:
        await worker.wait_ready(3 * UNIT_S)
        # The worker's demand reaches the hub: one public connection in all (the hub's).
        want = {"tickers.BTCUSDT", "tickers.ETHUSDT"}
        await wait_for(lambda: public_topics(sim) == [want], 5 * UNIT_S, "hub serves demand")
        assert worker.get_stats()["connected_public"] is False
        # A forced mark reaches the worker's handler through hub -> bus -> worker.
        sim.pause_ticks("BTCUSDT")
        tick = sim.exchange.instruments["BTCUSDT"].tick_size
        mark = sim.exchange.prices.mark("BTCUSDT") + 5 * tick
        await sim.set_mark("BTCUSDT", mark)
        await wait_for(
            lambda: any(
                d.data["symbol"] == "BTCUSDT"
                and d.data["source"] == "ticker"
                and d.data["mark_price"] == mark
                for d in rec.delivered
            ),
            5 * UNIT_S,
            "the bus mark in the handler",
        )
        assert worker.worker_core.bus_marks_applied > 0
        status = worker.get_status()["bus"]
        assert status["mode"] == "bus" and status["connected"] and status["failovers"] == 0
        # A late joiner reads the current mark at once from the last-value stream.
        async with nats_client(nats_server.url) as nc:
            got: asyncio.Queue[Msg] = asyncio.Queue()
            sub = await nc.jetstream().subscribe(
                "bybit.marks.BTCUSDT",
                ordered_consumer=True,
                deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
                cb=got.put,
            )
            first = await asyncio.wait_for(got.get(), 2 * UNIT_S)
            await sub.unsubscribe()
            assert decode_mark(first.data).mark_price == mark
            info = await nc.jetstream().stream_info(MARKS_STREAM)
            assert info.config.max_msgs_per_subject == 1
            # Secrets never on the bus: the demand entry names the account only.
            kv = await nc.jetstream().key_value(DEMAND_BUCKET)
            entry = await kv.get("alice")
            assert entry.value is not None
            assert sim.api_key.encode() not in entry.value
            assert sim.api_secret.encode() not in entry.value
    finally:
        await worker.stop()
        await hub.stop()
