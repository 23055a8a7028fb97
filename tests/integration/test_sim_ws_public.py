"""Simulator public linear stream on the wire: pongs, subscribe replies, snapshot then deltas."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import aiohttp
import pytest

from bybit_hybrid.sim import SimConfig, SimServer
from tests.integration.sim_support import public_ws, recv_json, recv_until, send
from tests.support import wait_for

F10_KEYS = {"symbol", "lastPrice", "markPrice", "indexPrice", "bid1Price", "ask1Price", "cs"} - {
    "cs"
}


@pytest.fixture
async def sim() -> AsyncIterator[SimServer]:
    async with SimServer(SimConfig(symbols=6, rate_hz=50, seed=3)) as server:
        yield server


def _without_conn_id(frame: dict[str, object]) -> dict[str, object]:
    assert isinstance(frame.pop("conn_id"), str)
    return frame


async def test_public_pong_shape(sim: SimServer, session: aiohttp.ClientSession) -> None:
    ws = await session.ws_connect(sim.public_ws_url)
    await send(ws, {"op": "ping", "req_id": "ping-pp"})
    assert _without_conn_id(await recv_json(ws)) == {
        "success": True,
        "ret_msg": "pong",
        "req_id": "ping-pp",
        "op": "ping",
    }
    await send(ws, {"op": "ping"})
    assert (await recv_json(ws))["req_id"] == ""
    await ws.close()


async def test_snapshot_then_partial_deltas(sim: SimServer, session: aiohttp.ClientSession) -> None:
    ws = await session.ws_connect(sim.public_ws_url)
    await send(ws, {"op": "subscribe", "args": ["tickers.BTCUSDT"], "req_id": "t1"})
    assert _without_conn_id(await recv_json(ws)) == {
        "success": True,
        "ret_msg": "",
        "req_id": "t1",
        "op": "subscribe",
    }
    snapshot = await recv_json(ws)
    assert list(snapshot) == ["topic", "type", "data", "cs", "ts"]
    assert (snapshot["topic"], snapshot["type"]) == ("tickers.BTCUSDT", "snapshot")
    assert isinstance(snapshot["data"], dict)
    assert set(snapshot["data"]) >= F10_KEYS
    assert all(isinstance(v, str) for v in snapshot["data"].values())
    assert type(snapshot["cs"]) is int and type(snapshot["ts"]) is int
    last_cs = snapshot["cs"]
    saw_without_mark = saw_with_mark = False
    for _ in range(40):
        delta = await recv_json(ws)
        assert delta["type"] == "delta"
        assert delta["data"]["symbol"] == "BTCUSDT"
        assert delta["cs"] > last_cs
        last_cs = delta["cs"]
        saw_with_mark |= "markPrice" in delta["data"]
        saw_without_mark |= "markPrice" not in delta["data"]
        if saw_with_mark and saw_without_mark:
            break
    assert saw_with_mark and saw_without_mark
    await ws.close()


async def test_one_bad_topic_fails_the_whole_frame(
    sim: SimServer, session: aiohttp.ClientSession
) -> None:
    ws = await session.ws_connect(sim.public_ws_url)
    await send(
        ws,
        {
            "op": "subscribe",
            "args": ["tickers.BTCUSDT", "tickers.NOPEUSDT", "orderbook.1.X"],
            "req_id": "e1",
        },
    )
    reply = _without_conn_id(await recv_json(ws))
    assert reply == {
        "success": False,
        "ret_msg": "error:handler not found,topic:tickers.NOPEUSDT",
        "req_id": "e1",
        "op": "subscribe",
    }
    # Frames are ordered: a pong right after the failure proves no snapshot was sent.
    await send(ws, {"op": "ping"})
    assert (await recv_json(ws))["ret_msg"] == "pong"
    assert all(not c.topics for c in sim.connections)
    for bad in ("tickers.btcusdt", "position", 42):
        await send(ws, {"op": "subscribe", "args": [bad]})
        assert (await recv_json(ws))["ret_msg"] == f"error:handler not found,topic:{bad}"
    await ws.close()


async def test_already_subscribed(sim: SimServer, session: aiohttp.ClientSession) -> None:
    ws = await public_ws(session, sim, ["tickers.ETHUSDT"])
    await send(ws, {"op": "subscribe", "args": ["tickers.ETHUSDT"], "req_id": "e6"})
    reply = await recv_until(ws, lambda f: f.get("op") == "subscribe")
    assert reply["success"] is False
    assert reply["ret_msg"] == "error:already subscribed,topic:tickers.ETHUSDT"
    assert reply["req_id"] == "e6"
    await ws.close()


async def test_invalid_op_and_garbage_keep_the_socket(
    sim: SimServer, session: aiohttp.ClientSession
) -> None:
    ws = await session.ws_connect(sim.public_ws_url)
    await send(ws, {"op": "dance", "req_id": "x"})
    reply = await recv_json(ws)
    assert (reply["success"], reply["ret_msg"], reply["req_id"]) == (False, "error:invalid op", "x")
    for garbage in ("hello", "[1,2]", "{", ""):
        await ws.send_str(garbage)
        reply = await recv_json(ws)
        assert reply["success"] is False
        assert reply["ret_msg"].startswith("Failed to decode incoming data:readObjectStart")
    await send(ws, {"op": "subscribe", "args": "tickers.SOLUSDT"})
    assert (await recv_json(ws))["success"] is True
    await ws.close()


async def test_unsubscribe_stops_frames(sim: SimServer, session: aiohttp.ClientSession) -> None:
    ws = await public_ws(session, sim, ["tickers.BTCUSDT"])
    await send(ws, {"op": "unsubscribe", "args": ["tickers.BTCUSDT"], "req_id": "u1"})
    reply = await recv_until(ws, lambda f: f.get("op") == "unsubscribe")
    assert (reply["success"], reply["req_id"]) == (True, "u1")
    await send(ws, {"op": "ping"})
    assert (await recv_json(ws))["ret_msg"] == "pong"
    await ws.close()
    await wait_for(lambda: not sim.connections, what="server to forget the socket")


async def test_every_subscriber_gets_the_same_frame(
    sim: SimServer, session: aiohttp.ClientSession
) -> None:
    one = await public_ws(session, sim, ["tickers.BTCUSDT"])
    two = await public_ws(session, sim, ["tickers.BTCUSDT"])
    sim.pause_ticks()
    await sim.set_mark("BTCUSDT", sim.exchange.prices.mark("BTCUSDT") + 1)
    first = await recv_until(
        one, lambda f: f["data"].get("markPrice") is not None and f["type"] == "delta"
    )
    second = await recv_until(two, lambda f: f["cs"] == first["cs"])
    assert first == second
    await one.close()
    await two.close()


async def test_stamp_send_us_is_off_by_default_and_stamps_each_write_when_on(
    sim: SimServer, session: aiohttp.ClientSession
) -> None:
    """`stamp_send_us` (benchmark-only): ticker data carries the µs time of the socket write."""
    plain = await session.ws_connect(sim.public_ws_url)
    await send(plain, {"op": "subscribe", "args": ["tickers.BTCUSDT"], "req_id": "s"})
    await recv_json(plain)
    assert "simSendUs" not in (await recv_json(plain))["data"]
    await plain.close()
    async with SimServer(SimConfig(symbols=2, rate_hz=50, seed=3, stamp_send_us=True)) as stamped:
        ws = await session.ws_connect(stamped.public_ws_url)
        before_us = time.time_ns() // 1000
        await send(ws, {"op": "subscribe", "args": ["tickers.BTCUSDT"], "req_id": "s"})
        assert (await recv_json(ws))["success"] is True
        for _ in range(3):  # the snapshot, then deltas
            frame = await recv_json(ws)
            stamp = frame["data"]["simSendUs"]
            assert isinstance(stamp, int) and before_us <= stamp <= time.time_ns() // 1000
            assert frame["data"]["symbol"] == "BTCUSDT"
        await ws.close()
