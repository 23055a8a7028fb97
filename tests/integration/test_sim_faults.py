"""Each simulator fault switch, observed on the wire with raw JSON over aiohttp sockets."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from decimal import Decimal

import aiohttp
import pytest

from bybit_hybrid.sim import RestErrorMode, SimConfig, SimServer
from tests.integration.sim_support import (
    auth_frame,
    control,
    private_ws,
    public_ws,
    recv_json,
    send,
    signed_get,
)
from tests.support import UNIT_S, wait_for

LIST_QUERY = "category=linear&settleCoin=USDT"


@pytest.fixture
async def sim() -> AsyncIterator[SimServer]:
    async with SimServer(SimConfig(symbols=6, positions=2, rate_hz=20, seed=4)) as server:
        server.pause_ticks()
        yield server


async def test_drop_clean_and_abrupt(sim: SimServer, session: aiohttp.ClientSession) -> None:
    pub = await public_ws(session, sim)
    priv = await private_ws(session, sim)
    assert await sim.faults.drop("public") == 1
    closing = await pub.receive(timeout=2 * UNIT_S)
    assert closing.type is aiohttp.WSMsgType.CLOSE
    assert pub.close_code == 1000 or closing.data == 1000
    assert not priv.closed
    await sim.faults.drop("private", abrupt=True)
    cut = await priv.receive(timeout=2 * UNIT_S)
    assert cut.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)
    assert priv.close_code != 1000


async def test_drop_via_control_route(sim: SimServer, session: aiohttp.ClientSession) -> None:
    ws = await public_ws(session, sim)
    result = await control(session, sim, "/sim/fault/drop", {"target": "all", "abrupt": True})
    assert result == {"connections": 1}
    assert (await ws.receive(timeout=2 * UNIT_S)).type in (
        aiohttp.WSMsgType.CLOSED,
        aiohttp.WSMsgType.ERROR,
    )


async def test_silent_socket(sim: SimServer, session: aiohttp.ClientSession) -> None:
    ws = await public_ws(session, sim, ["tickers.BTCUSDT"])
    assert sim.faults.silence("public") == 1
    await send(ws, {"op": "ping"})
    await sim.set_mark("BTCUSDT", Decimal("65001.00"))
    with pytest.raises(TimeoutError):
        await ws.receive(timeout=0.3 * UNIT_S)
    assert not ws.closed
    fresh = await public_ws(session, sim)
    await send(fresh, {"op": "ping"})
    assert (await recv_json(fresh))["ret_msg"] == "pong"
    sim.faults.clear()
    await send(ws, {"op": "ping"})
    assert (await recv_json(ws))["ret_msg"] == "pong"


async def test_refuse_connections(sim: SimServer, session: aiohttp.ClientSession) -> None:
    await control(session, sim, "/sim/fault/refuse", {"seconds": 30})
    for url in (sim.public_ws_url, sim.private_ws_url):
        with pytest.raises(aiohttp.WSServerHandshakeError) as err:
            await session.ws_connect(url)
        assert err.value.status == 503
    await control(session, sim, "/sim/fault/clear", {})
    ws = await session.ws_connect(sim.public_ws_url)
    await ws.close()


async def test_reject_auth_counted_and_timed(
    sim: SimServer, session: aiohttp.ClientSession
) -> None:
    sim.faults.reject_auth(count=1)
    ws = await session.ws_connect(sim.private_ws_url)
    await send(ws, auth_frame(sim))
    assert (await recv_json(ws))["ret_msg"] == "Params Error"
    await send(ws, auth_frame(sim))
    assert (await recv_json(ws))["success"] is True
    await control(session, sim, "/sim/fault/reject_auth", {"seconds": 30})
    for _ in range(2):
        await send(ws, auth_frame(sim))
        assert (await recv_json(ws))["success"] is False
    await ws.close()


async def test_delay_frames(sim: SimServer, session: aiohttp.ClientSession) -> None:
    ws = await public_ws(session, sim)
    sim.faults.delay_frames(300)
    started = time.monotonic()
    await send(ws, {"op": "ping"})
    assert (await recv_json(ws))["ret_msg"] == "pong"
    assert time.monotonic() - started >= 0.3
    sim.faults.delay_frames(0)
    await ws.close()


async def test_malformed_and_unknown_topic_frames(
    sim: SimServer, session: aiohttp.ClientSession
) -> None:
    pub = await public_ws(session, sim)
    priv = await private_ws(session, sim, ["position"])
    assert sim.faults.send_malformed("public") == 1
    raw = await pub.receive(timeout=2 * UNIT_S)
    with pytest.raises(ValueError):
        json.loads(raw.data)
    assert sim.faults.send_unknown_topic("all") == 2
    assert (await recv_json(pub))["topic"] == "publicTrade.SIMUNKNOWN"
    frame = await recv_json(priv)
    assert frame["topic"] == "unknown.topic"
    assert list(frame) == ["id", "topic", "creationTime", "data"]
    await pub.close()
    await priv.close()


async def test_idle_cut_of_private_sockets(sim: SimServer, session: aiohttp.ClientSession) -> None:
    idle = await private_ws(session, sim)
    public = await public_ws(session, sim)
    await wait_for(lambda: all(c.idle_s() > 0.05 for c in sim.connections), what="some idle time")
    assert (await control(session, sim, "/sim/fault/idle_cut", {"idle_s": 0.05})) == {
        "connections": 1
    }
    assert (await idle.receive(timeout=2 * UNIT_S)).type in (
        aiohttp.WSMsgType.CLOSED,
        aiohttp.WSMsgType.ERROR,
    )
    await send(public, {"op": "ping"})
    assert (await recv_json(public))["ret_msg"] == "pong"
    fresh = await private_ws(session, sim)
    assert sim.faults.cut_idle(60) == 0
    await fresh.close()
    await public.close()


async def test_rest_errors(sim: SimServer, session: aiohttp.ClientSession) -> None:
    sim.faults.rest_errors(RestErrorMode.RATE_LIMIT, count=1)
    resp, body = await signed_get(session, sim, "/v5/position/list", LIST_QUERY)
    assert (body["retCode"], body["retMsg"]) == (10006, "Too many visits!")
    assert resp.headers["X-Bapi-Limit-Status"] == "0"
    assert "X-Bapi-Limit-Reset-Timestamp" in resp.headers
    _, body = await signed_get(session, sim, "/v5/position/list", LIST_QUERY)
    assert body["retCode"] == 0
    await control(session, sim, "/sim/fault/rest_error", {"mode": "10002", "count": 1})
    _, body = await signed_get(session, sim, "/v5/position/list", LIST_QUERY)
    assert body["retCode"] == 10002
    assert body["retMsg"].startswith("invalid request, please check your server timestamp")
    sim.faults.rest_errors("5xx", count=2, path="/v5/market/tickers")
    for _ in range(2):
        async with session.get(f"{sim.base_url}/v5/market/tickers?category=linear") as resp:
            assert resp.status == 502
            assert not (await resp.text()).startswith("{")
    async with session.get(f"{sim.base_url}/v5/market/tickers?category=linear") as resp:
        assert resp.status == 200


async def test_stale_mark_diverges_from_rest(
    sim: SimServer, session: aiohttp.ClientSession
) -> None:
    ws = await public_ws(session, sim, ["tickers.BTCUSDT"])
    frozen = sim.exchange.ticker_fields("BTCUSDT")["markPrice"]
    await control(session, sim, "/sim/fault/stale_mark", {"symbol": "BTCUSDT"})
    await sim.set_prices("BTCUSDT", mark=Decimal("66000.00"), index=Decimal("66001.00"))
    delta = await recv_json(ws)
    assert delta["data"] == {"symbol": "BTCUSDT", "indexPrice": "66001.00"}
    url = f"{sim.base_url}/v5/market/tickers?category=linear&symbol=BTCUSDT"
    async with session.get(url) as resp:
        assert (await resp.json())["result"]["list"][0]["markPrice"] == "66000.00"
    again = await public_ws(session, sim)
    await send(again, {"op": "subscribe", "args": ["tickers.BTCUSDT"]})
    await recv_json(again)
    assert (await recv_json(again))["data"]["markPrice"] == frozen
    await ws.close()
    await again.close()


async def test_mute_one_symbol(sim: SimServer, session: aiohttp.ClientSession) -> None:
    ws = await public_ws(session, sim, ["tickers.BTCUSDT", "tickers.ETHUSDT"])
    sim.faults.mute("BTCUSDT")
    await sim.set_mark("BTCUSDT", Decimal("65100.00"))
    await sim.set_mark("ETHUSDT", Decimal("3300.00"))
    frame = await recv_json(ws)
    assert frame["topic"] == "tickers.ETHUSDT"
    sim.faults.clear()
    await sim.set_mark("BTCUSDT", Decimal("65200.00"))
    assert (await recv_json(ws))["data"]["markPrice"] == "65200.00"
    await ws.close()


async def test_control_routes_for_positions_and_history(
    sim: SimServer, session: aiohttp.ClientSession
) -> None:
    ws = await private_ws(session, sim, ["position"])
    body = {"symbol": "SOLUSDT", "side": "Buy", "qty": "1.0"}
    assert "orderId" in await control(session, sim, "/sim/position/open", body)
    push = await recv_json(ws)
    assert push["data"][0]["symbol"] == "SOLUSDT"
    await control(session, sim, "/sim/position/change", {"symbol": "SOLUSDT", "stopLoss": "140"})
    await control(session, sim, "/sim/mark", {"symbol": "SOLUSDT", "price": "139.000"})
    assert sim.exchange.slot("SOLUSDT", 0).is_open, "the stop watches LastPrice"
    await control(session, sim, "/sim/prices", {"symbol": "SOLUSDT", "last": "139.000"})
    async with session.get(f"{sim.base_url}/sim/history") as resp:
        history = (await resp.json())["result"]
    closes = [e for e in history if e["kind"] == "close"]
    assert closes[-1]["symbol"] == "SOLUSDT"
    assert closes[-1]["reason"] == "stop_loss"
    async with session.get(f"{sim.base_url}/sim/state") as resp:
        state = (await resp.json())["result"]
    assert state["ticks_paused"] is True
    async with session.post(f"{sim.base_url}/sim/position/open", json={"symbol": "NOPE"}) as resp:
        assert resp.status == 400
        assert (await resp.json())["ok"] is False
    async with session.post(f"{sim.base_url}/sim/mark", data=b"not json") as resp:
        assert resp.status == 400
    await ws.close()
