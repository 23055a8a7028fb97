"""The NATS JetStream scale-out against a real nats-server and the simulator: demand union and
expiry, the last-value marks stream, hot-hot hubs, position replay, bus-outage fallback."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.errors import KeyNotFoundError

import bybit_hybrid
from bybit_hybrid.bus.payloads import (
    Demand,
    HubBeat,
    decode_beat,
    decode_mark,
    decode_position,
    encode,
)
from bybit_hybrid.bus.setup import ensure_demand_bucket
from bybit_hybrid.bus.subjects import (
    DEMAND_BUCKET,
    HUB_HEARTBEAT,
    MARKS_STREAM,
    POSITIONS_STREAM,
    mark_msg_id,
)
from bybit_hybrid.bus.worker import BusWorker
from bybit_hybrid.protocol.alerts import AlertCleared, AlertRaised
from bybit_hybrid.protocol.events import MarkUpdated
from bybit_hybrid.rollout.modes import RolloutStream
from bybit_hybrid.service.settings import load_settings
from bybit_hybrid.service.streams import make_position_stream
from bybit_hybrid.stream import BybitHybridStream
from tests.integration.bus_harness import BusRig, fast_bus, public_topics
from tests.integration.stream_harness import CONFIG, Recorder
from tests.support import CONTRACT_KEYS, UNIT_S, wait_for

D = Decimal


async def test_hub_subscribes_the_union_of_demand_and_drops_expired_entries(rig: BusRig) -> None:
    sim, bus = rig.sim, rig.bus
    hub = await rig.hub()
    kv = await ensure_demand_bucket((await rig.client()).jetstream(), bus)
    await kv.put("alice", encode(Demand("alice", ["BTCUSDT", "ETHUSDT"], 0)))
    await kv.put("bob", encode(Demand("bob", ["ETHUSDT", "SOLUSDT"], 0)))
    union = {"tickers.BTCUSDT", "tickers.ETHUSDT", "tickers.SOLUSDT"}
    await wait_for(lambda: set().union(*public_topics(sim)) == union, 5 * UNIT_S, "the union")
    # Its beats name the symbols whose tickers it hears: a quiet mark is not a stale one.
    beats = await (await rig.client()).subscribe(HUB_HEARTBEAT)
    for _ in range(20):
        beat = decode_beat((await beats.next_msg(timeout=2 * UNIT_S)).data)
        if beat.live == ["BTCUSDT", "ETHUSDT", "SOLUSDT"]:
            break
    assert beat.hub == "hub-a" and beat.live == ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
    await beats.unsubscribe()
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


async def test_worker_takes_marks_from_the_bus_and_opens_no_public_socket(rig: BusRig) -> None:
    sim = rig.sim
    await rig.hub()
    worker, rec = await rig.worker()
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
    assert _bus(worker).core.bus_marks_applied > 0
    status = worker.get_status()["bus"]
    assert status["mode"] == "bus" and status["connected"] and status["failovers"] == 0
    # A late joiner reads the current mark at once from the last-value stream.
    js = (await rig.client()).jetstream()
    got: asyncio.Queue[Msg] = asyncio.Queue()
    sub = await js.subscribe(
        "bybit.marks.BTCUSDT",
        ordered_consumer=True,
        deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
        cb=got.put,
    )
    first = await asyncio.wait_for(got.get(), 2 * UNIT_S)
    await sub.unsubscribe()
    assert decode_mark(first.data).mark_price == mark
    info = await js.stream_info(MARKS_STREAM)
    assert info.config.max_msgs_per_subject == 1
    # Secrets never on the bus: the demand entry names the account only.
    entry = await (await js.key_value(DEMAND_BUCKET)).get("alice")
    assert entry.value is not None
    assert sim.api_key.encode() not in entry.value
    assert sim.api_secret.encode() not in entry.value


async def test_the_public_facade_takes_bus_url_and_bus_account(rig: BusRig) -> None:
    """`bybit_hybrid.BybitHybridStream(..., bus_url=..., bus_account=...)`, the issue's API:
    a plain URL string, `async with`, marks in the handler from the hub, no public socket."""
    sim = rig.sim
    hub = await rig.hub()
    rec = Recorder()
    stream = bybit_hybrid.BybitHybridStream(
        sim.api_key,
        sim.api_secret,
        rec.handler,
        base_url=sim.base_url,
        config=CONFIG,
        bus_url=rig.url,
        bus_account="carol",
    )
    async with stream:
        await stream.wait_ready(3 * UNIT_S)
        await wait_for(
            lambda: public_topics(sim) == [{"tickers.BTCUSDT", "tickers.ETHUSDT"}],
            5 * UNIT_S,
            "carol's demand served by the hub",
        )
        sim.pause_ticks("ETHUSDT")
        mark = (
            sim.exchange.prices.mark("ETHUSDT") + 3 * sim.exchange.instruments["ETHUSDT"].tick_size
        )
        await sim.set_mark("ETHUSDT", mark)
        await wait_for(
            lambda: any(d.data["mark_price"] == mark for d in rec.delivered),
            5 * UNIT_S,
            "the hub's mark in carol's handler",
        )
        stats = stream.get_stats()
        assert stats["connected_public"] is False and stats["bus_fallback"] is False
        assert stream.get_status()["bus"]["account"] == "carol"
        assert sim.api_key not in repr(stream) and sim.api_secret not in repr(stream)
        # A late joiner with no hub left: the marks it gets from the bus can only be the
        # stream's last values, read at subscribe (live marks come by plain subscription).
        await hub.stop()
        dave, _dave_rec = await rig.worker("dave")
        await wait_for(
            lambda: _bus(dave).bus_marks >= 2, 5 * UNIT_S, "the last values for a late joiner"
        )


def test_bus_url_without_an_account_or_with_a_bad_url_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="bus_account"):
        BybitHybridStream("k", "s", bus_url="nats://127.0.0.1:4222")
    with pytest.raises(ValueError, match="http://h:1"):
        BybitHybridStream("k", "s", bus_url="http://h:1", bus_account="a")
    with pytest.raises(ValueError, match=r"account .*a\.b"):
        BybitHybridStream("k", "s", bus_url="nats://h:1", bus_account="a.b")


def test_without_bus_url_nats_is_not_even_imported() -> None:
    """The single-process stream is unchanged: no bus code loads unless `bus_url` is given."""
    code = (
        "import sys, bybit_hybrid\n"
        "s = bybit_hybrid.BybitHybridStream('k', 's')\n"
        "assert s.bus is None\n"
        "print(sorted(m for m in sys.modules if m == 'nats' or m.startswith('bybit_hybrid.bus')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]", out.stdout


def _bus(stream: BybitHybridStream) -> BusWorker:
    assert stream.bus is not None
    return stream.bus


def _published(stream: BybitHybridStream, counter: str) -> Callable[[], int]:
    return lambda: _bus(stream).publisher.stats[counter]


def _core_marks(rec: Recorder, symbol: str) -> list[Decimal]:
    return [
        e.view.mark_price
        for _t, e in rec.core_events
        if isinstance(e, MarkUpdated) and e.key.symbol == symbol and e.view.mark_price
    ]


async def test_hot_hot_hubs_publish_each_mark_once_and_one_may_die(rig: BusRig) -> None:
    sim = rig.sim
    hub_a, hub_b = await rig.hub("hub-a"), await rig.hub("hub-b")
    worker, rec = await rig.worker()
    seen: list[tuple[str, str]] = []  # (msg id, publishing hub) of every message stored

    async def on_msg(msg: Msg) -> None:
        mark = decode_mark(msg.data)
        seen.append((mark_msg_id(mark.symbol, mark.cs, mark.ts_ms), mark.hub))

    await (
        (await rig.client())
        .jetstream()
        .subscribe(
            "bybit.marks.>", ordered_consumer=True, deliver_policy=DeliverPolicy.NEW, cb=on_msg
        )
    )
    both = [{"tickers.BTCUSDT", "tickers.ETHUSDT"}] * 2
    await wait_for(lambda: public_topics(sim) == both, 5 * UNIT_S, "both hubs serve")
    await wait_for(
        lambda: hub_a.stats["duplicates"] + hub_b.stats["duplicates"] >= 5,
        5 * UNIT_S,
        "the duplicate window dropping the second hub's copies",
    )
    ids = [i for i, _hub in seen]
    assert len(ids) == len(set(ids)), "a mark was stored twice"
    # Kill one hub: every later mark still reaches the worker, each stored once.
    await hub_a.stop()
    sim.pause_ticks("BTCUSDT")
    tick = sim.exchange.instruments["BTCUSDT"].tick_size
    for step in range(1, 6):
        mark = sim.exchange.prices.mark("BTCUSDT") + step * tick
        await sim.set_mark("BTCUSDT", mark)
        await wait_for(
            lambda m=mark: m in _core_marks(rec, "BTCUSDT"),  # type: ignore[misc]
            5 * UNIT_S,
            f"mark {mark} after hub-a died",
        )
    ids = [i for i, _hub in seen]
    assert len(ids) == len(set(ids))
    assert worker.get_status()["bus"]["mode"] == "bus"


async def _read_positions(nc: Client, account: str, from_seq: int = 1) -> list[Msg]:
    """Every message on `bybit.positions.{account}` from stream sequence `from_seq` on."""
    js = nc.jetstream()
    sub = await js.subscribe(
        f"bybit.positions.{account}",
        ordered_consumer=True,
        config=ConsumerConfig(
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=from_seq
        ),
    )
    msgs: list[Msg] = []
    try:
        while True:
            try:
                msg = await sub.next_msg(timeout=0.5 * UNIT_S)
            except NatsTimeoutError:
                return msgs
            msgs.append(msg)
    finally:
        await sub.unsubscribe()


def _lifecycle(msgs: list[Msg]) -> list[tuple[str, str]]:
    return [(m.event, m.data["symbol"]) for m in map(lambda x: decode_position(x.data), msgs)]


async def test_position_events_replay_from_a_sequence_across_a_worker_restart(
    rig: BusRig,
) -> None:
    sim = rig.sim
    await rig.hub()
    worker, _rec = await rig.worker()
    await sim.open_position("SOLUSDT", "Buy", D("0.5"))
    await wait_for(lambda: _published(worker, "published")() >= 3, 5 * UNIT_S, "3 opens")
    nc = await rig.client()
    first = await _read_positions(nc, "alice")
    assert sorted(_lifecycle(first)) == [
        ("opened", "BTCUSDT"),
        ("opened", "ETHUSDT"),
        ("opened", "SOLUSDT"),
    ]
    payload = decode_position(first[0].data)
    assert payload.account == "alice" and payload.exchange == "bybit"
    assert set(payload.data) == CONTRACT_KEYS
    assert isinstance(payload.data["size"], str)  # decimals as strings
    for msg in first:
        assert sim.api_key.encode() not in msg.data
    last_seq = first[-1].metadata.sequence.stream
    # Restart the worker: its bootstrap re-announces the same three positions; the
    # duplicate window drops them, so a consumer resuming after last_seq sees only
    # what really happened since.
    worker, _rec = await rig.restart(worker)
    await wait_for(lambda: _published(worker, "duplicates")() >= 3, 5 * UNIT_S, "dup opens")
    await sim.close_position("SOLUSDT")
    await wait_for(lambda: _published(worker, "published")() >= 1, 5 * UNIT_S, "close")
    resumed = await _read_positions(nc, "alice", last_seq + 1)
    assert _lifecycle(resumed) == [("closed", "SOLUSDT")]
    info = await nc.jetstream().stream_info(POSITIONS_STREAM)
    assert info.state.messages == 4


async def test_bus_outage_falls_back_to_the_own_public_socket_and_returns(rig: BusRig) -> None:
    sim, bus = rig.sim, rig.bus
    await rig.hub()
    worker, rec = await rig.worker()
    want = {"tickers.BTCUSDT", "tickers.ETHUSDT"}
    tick = sim.exchange.instruments["BTCUSDT"].tick_size
    sim.pause_ticks("BTCUSDT")

    async def prove_mark(step: int) -> None:
        mark = sim.exchange.prices.mark("BTCUSDT") + step * tick
        await sim.set_mark("BTCUSDT", mark)
        await wait_for(lambda: mark in _core_marks(rec, "BTCUSDT"), 5 * UNIT_S, f"mark {mark}")

    await wait_for(lambda: public_topics(sim) == [want], 5 * UNIT_S, "hub serves demand")
    await rig.nats_server.stop()
    # Stale longer than the bound: the worker subscribes its own public socket.
    await wait_for(
        lambda: worker.get_status()["bus"]["mode"] == "fallback",
        bus.stale_after_s * 3 + 2 * UNIT_S,
        "fallback",
    )
    await wait_for(lambda: public_topics(sim) == [want, want], 5 * UNIT_S, "own socket")
    assert worker.get_stats()["bus_fallback"] is True
    assert worker.get_status()["bus"]["failovers"] == 1
    await prove_mark(3)
    # The bus is back: the worker returns and retires its own socket.
    await rig.nats_server.start()
    await wait_for(
        lambda: worker.get_status()["bus"]["mode"] == "bus",
        bus.stale_after_s * 3 + 5 * UNIT_S,
        "back on the bus",
    )
    await wait_for(lambda: public_topics(sim) == [want], 5 * UNIT_S, "own socket closed")
    applied = _bus(worker).core.bus_marks_applied
    await prove_mark(6)
    assert _bus(worker).core.bus_marks_applied > applied, "the mark came over the bus"
    assert worker.get_stats()["bus_fallback"] is False
    alerts = [
        (type(e).__name__, e.name)
        for _t, e in rec.core_events
        if isinstance(e, AlertRaised | AlertCleared)
    ]
    assert alerts == [("AlertRaised", "bus_fallback"), ("AlertCleared", "bus_fallback")]


async def test_no_lifecycle_event_lost_or_doubled_across_worker_and_hub_restarts(
    rig: BusRig,
) -> None:
    sim = rig.sim
    hub = await rig.hub()
    worker, _rec = await rig.worker()
    await wait_for(lambda: _published(worker, "published")() >= 2, 5 * UNIT_S, "2 opens")
    nc = await rig.client()
    last_seq = (await _read_positions(nc, "alice"))[-1].metadata.sequence.stream
    # Down: ETH closes and XRP opens meanwhile. The new book never saw ETH open.
    await worker.stop()
    await sim.close_position("ETHUSDT")
    await sim.open_position("XRPUSDT", "Sell", D("10"))
    worker, _rec = await rig.restart(worker)
    await wait_for(lambda: _published(worker, "closes_restored")() == 1, 5 * UNIT_S, "ETH close")
    # The hub restarts too: lifecycle events do not depend on it.
    await hub.stop()
    await rig.hub("hub-a2")
    await sim.close_position("BTCUSDT")
    await wait_for(lambda: _published(worker, "published")() >= 3, 5 * UNIT_S, "3 new events")
    resumed = await _read_positions(nc, "alice", last_seq + 1)
    assert sorted(_lifecycle(resumed)) == [
        ("closed", "BTCUSDT"),
        ("closed", "ETHUSDT"),
        ("opened", "XRPUSDT"),
    ]
    eth = next(decode_position(m.data).data for m in resumed if b"ETHUSDT" in m.data)
    assert eth["size"] == "0" and eth["status"] == "closed" and eth["source"] == "rest"
    assert set(eth) == CONTRACT_KEYS


async def test_worker_started_without_bus_or_hub_uses_its_own_socket_until_a_hub_beats(
    rig: BusRig,
) -> None:
    sim, bus = rig.sim, rig.bus
    await rig.nats_server.stop()
    worker, _rec = await rig.worker()  # the account does not wait for the bus
    hub = await rig.hub(start=False)
    want = {"tickers.BTCUSDT", "tickers.ETHUSDT"}
    await wait_for(
        lambda: worker.get_status()["bus"]["mode"] == "fallback",
        bus.stale_after_s * 3 + 2 * UNIT_S,
        "fallback without a bus",
    )
    await wait_for(lambda: public_topics(sim) == [want], 5 * UNIT_S, "own socket")
    # The bus comes back, but no hub: a connection alone is not health.
    await rig.nats_server.start()
    await wait_for(lambda: worker.get_status()["bus"]["connected"], 5 * UNIT_S, "bus up")
    await asyncio.sleep(bus.stale_after_s * 2)  # proving a state holds: nothing to await
    assert worker.get_status()["bus"]["mode"] == "fallback"
    await hub.start()
    await wait_for(
        lambda: worker.get_status()["bus"]["mode"] == "bus",
        bus.stale_after_s * 3 + 5 * UNIT_S,
        "back on the bus once a hub beats",
    )
    await wait_for(lambda: public_topics(sim) == [want], 5 * UNIT_S, "only the hub's")
    assert worker.get_status()["bus"]["failovers"] == 1


async def test_the_service_builds_a_rollout_hybrid_stream_around_the_worker(
    rig: BusRig, tmp_path: Path
) -> None:
    """`run`/`stream --bus`: the worker sits inside the hybrid mode's failover and alerts, and
    the bus subjects count as subscribed tickers (no "zero subscriptions" alert)."""
    settings = load_settings(
        None,
        {
            "bus_url": rig.url,
            "bus_account": "alice",
            "bus_stale_after_s": 1.5 * UNIT_S,
            "rollout_mark_stale_s": 1.0 * UNIT_S,
            "state_db": tmp_path / "state.sqlite3",
        },
    )
    await rig.hub()
    events: list[object] = []
    sim = rig.sim
    stream = make_position_stream(
        settings, sim.api_key, sim.api_secret, None, {"base_url": sim.base_url}
    )
    stream.add_listener(events.append)
    await stream.start()
    try:
        assert isinstance(stream, RolloutStream) and isinstance(stream.hybrid, BybitHybridStream)
        assert stream.hybrid.bus is not None
        await stream.wait_ready(3 * UNIT_S)
        await wait_for(
            lambda: stream.get_stats()["subscribed_tickers"] == 2, 5 * UNIT_S, "bus subjects"
        )
        status = stream.get_status()
        assert status["bus"]["mode"] == "bus" and status["bus"]["account"] == "alice"
        assert status["stats"]["bus_fallback"] is False
        await asyncio.sleep(2 * UNIT_S)  # past the zero-subscription grace: nothing raised
        assert not [e for e in events if isinstance(e, AlertRaised)]
        assert stream.get_stats()["polling_symbols"] == 0
    finally:
        await stream.stop()


async def test_a_restart_after_the_duplicate_window_republishes_nothing_and_changes_are_changes(
    rig: BusRig,
) -> None:
    # A window far shorter than the restart: JetStream's msg-id dedupe cannot help here.
    rig.bus = fast_bus(rig.url, duplicate_window_s=0.1)
    worker, _rec = await rig.worker()
    await wait_for(lambda: _published(worker, "published")() >= 2, 5 * UNIT_S, "2 opens")
    nc = await rig.client()
    last_seq = (await _read_positions(nc, "alice"))[-1].metadata.sequence.stream
    await worker.stop()
    await rig.sim.change_position("BTCUSDT", size=D("0.003"))  # while the worker is down
    worker, _rec = await rig.restart(worker)
    await wait_for(lambda: _published(worker, "published")() >= 1, 5 * UNIT_S, "news")
    await wait_for(lambda: _published(worker, "duplicates")() >= 1, 5 * UNIT_S, "ETH")
    resumed = await _read_positions(nc, "alice", last_seq + 1)
    assert _lifecycle(resumed) == [("changed", "BTCUSDT")]
    assert decode_position(resumed[0].data).data["size"] == "0.003"


async def test_new_demand_reaches_the_hub_at_once_not_at_the_next_poll(rig: BusRig) -> None:
    sim = rig.sim
    rig.bus = fast_bus(rig.url, demand_refresh_s=60.0, demand_ttl_s=120.0)
    await rig.hub()
    kv = await ensure_demand_bucket((await rig.client()).jetstream(), rig.bus)
    await kv.put("alice", encode(Demand("alice", ["SOLUSDT"], 0)))
    await wait_for(lambda: public_topics(sim) == [{"tickers.SOLUSDT"}], 3 * UNIT_S, "put")
    await kv.put("alice", encode(Demand("alice", ["SOLUSDT", "XRPUSDT"], 0)))
    want = {"tickers.SOLUSDT", "tickers.XRPUSDT"}
    await wait_for(lambda: public_topics(sim) == [want], 3 * UNIT_S, "a second put")
    await kv.delete("alice")  # a clean stop withdraws at once too
    await wait_for(lambda: public_topics(sim) == [set()], 3 * UNIT_S, "the delete")


async def test_a_symbol_no_hub_serves_falls_back_alone_and_returns(rig: BusRig) -> None:
    """Per-symbol bus staleness: the bus is healthy (a hub beats) but names only BTC alive;
    ETH alone goes to the account's own socket, BTC stays on the bus; named again, ETH returns.
    The "hub" here is the test itself publishing beats, so which symbols it serves is exact."""
    sim, bus = rig.sim, rig.bus
    nc = await rig.client()
    live = ["BTCUSDT"]
    beating = True

    async def beat() -> None:
        while beating:
            await nc.publish(HUB_HEARTBEAT, encode(HubBeat("test-hub", 2, 0, list(live))))
            await asyncio.sleep(bus.heartbeat_s)

    beats = asyncio.create_task(beat())
    try:
        worker, rec = await rig.worker()
        await wait_for(
            lambda: public_topics(sim) == [{"tickers.ETHUSDT"}],
            bus.stale_after_s * 3 + 2 * UNIT_S,
            "ETH alone on the own socket",
        )
        status = worker.get_status()["bus"]
        assert status["mode"] == "bus" and status["own_socket_symbols"] == ["ETHUSDT"]
        assert worker.get_stats()["bus_fallback"] is False  # the account is still on the bus
        live.append("ETHUSDT")
        await wait_for(
            lambda: public_topics(sim) == [],
            bus.stale_after_s * 3 + 2 * UNIT_S,
            "ETH back on the bus, the own socket closed",
        )
        assert worker.get_status()["bus"]["own_socket_symbols"] == []
        assert not [e for _t, e in rec.core_events if isinstance(e, AlertRaised)]
    finally:
        beating = False
        await beats
