"""Simulator private stream on the wire: auth, pongs, auth-before-subscribe, position pushes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import aiohttp
import pytest

from bybit_hybrid.sim import PositionMode, SimConfig, SimServer
from tests.integration.sim_support import (
    auth_frame,
    now_ms,
    private_ws,
    recv_json,
    recv_until,
    send,
)
from tests.support import UNIT_S, wait_for


@pytest.fixture
async def sim() -> AsyncIterator[SimServer]:
    async with SimServer(SimConfig(symbols=6, rate_hz=20, seed=5)) as server:
        server.pause_ticks()
        yield server


async def test_auth_success_shape(sim: SimServer, session: aiohttp.ClientSession) -> None:
    ws = await session.ws_connect(sim.private_ws_url)
    await send(ws, auth_frame(sim))
    reply = await recv_json(ws)
    assert list(reply) == ["success", "ret_msg", "op", "conn_id"]
    assert (reply["success"], reply["ret_msg"], reply["op"]) == (True, "", "auth")
    await ws.close()


@pytest.mark.parametrize("case", ["bad_signature", "expired", "unknown_key", "bad_args"])
async def test_auth_failures_are_params_error(
    sim: SimServer, session: aiohttp.ClientSession, case: str
) -> None:
    frame: dict[str, Any] = auth_frame(sim)
    if case == "bad_signature":
        frame = auth_frame(sim, secret="wrong-secret")
    elif case == "expired":
        frame = auth_frame(sim, expires_ms=now_ms() - 1)
    elif case == "unknown_key":
        frame["args"][0] = "NOTAKEY"
    else:
        frame["args"] = ["only-one"]
    ws = await session.ws_connect(sim.private_ws_url)
    await send(ws, frame)
    reply = await recv_json(ws)
    assert isinstance(reply.pop("conn_id"), str)
    assert reply == {"success": False, "ret_msg": "Params Error", "op": "auth"}
    await ws.close()


async def test_expires_as_string_is_accepted(
    sim: SimServer, session: aiohttp.ClientSession
) -> None:
    frame = auth_frame(sim)
    frame["args"][1] = str(frame["args"][1])
    ws = await session.ws_connect(sim.private_ws_url)
    await send(ws, frame)
    assert (await recv_json(ws))["success"] is True
    await ws.close()


async def test_subscribe_before_auth_is_not_authorized(
    sim: SimServer, session: aiohttp.ClientSession
) -> None:
    ws = await session.ws_connect(sim.private_ws_url)
    await send(ws, {"op": "subscribe", "args": ["position"], "req_id": "s1"})
    reply = await recv_json(ws)
    assert isinstance(reply.pop("conn_id"), str)
    assert reply == {
        "req_id": "s1",
        "success": False,
        "ret_msg": "Request not authorized",
        "op": "subscribe",
    }
    await ws.close()


async def test_private_pong_shapes(sim: SimServer, session: aiohttp.ClientSession) -> None:
    ws = await private_ws(session, sim)
    await send(ws, {"op": "ping", "req_id": "test"})
    pong = await recv_json(ws)
    assert list(pong) == ["req_id", "op", "args", "conn_id"]
    assert (pong["req_id"], pong["op"]) == ("test", "pong")
    assert abs(int(pong["args"][0]) - now_ms()) < 5000 * UNIT_S
    await send(ws, {"op": "ping"})
    assert list(await recv_json(ws)) == ["op", "args", "conn_id"]
    await ws.close()


async def test_topic_rules(sim: SimServer, session: aiohttp.ClientSession) -> None:
    ws = await private_ws(session, sim)
    await send(ws, {"op": "subscribe", "args": ["position", "position.linear"], "req_id": "c"})
    conflict = await recv_json(ws)
    assert conflict["success"] is False
    assert "position.linear" in conflict["ret_msg"]
    await send(ws, {"op": "subscribe", "args": ["tickers.BTCUSDT"]})
    assert (await recv_json(ws))["ret_msg"] == "error:handler not found,topic:tickers.BTCUSDT"
    await send(ws, {"op": "subscribe", "args": ["position", "order", "execution", "wallet"]})
    assert (await recv_json(ws))["success"] is True
    await send(ws, {"op": "subscribe", "args": ["position"]})
    assert (await recv_json(ws))["ret_msg"] == "error:already subscribed,topic:position"
    # No snapshot on subscribe: the next frame after the acks is our pong.
    await send(ws, {"op": "ping"})
    assert (await recv_json(ws))["op"] == "pong"
    await ws.close()


async def test_position_push_on_open_change_close(
    sim: SimServer, session: aiohttp.ClientSession
) -> None:
    ws = await private_ws(session, sim, ["position", "execution", "order"])
    await sim.open_position("BTCUSDT", "Buy", Decimal("0.01"))
    by_topic = {f["topic"]: f for f in [await recv_json(ws) for _ in range(3)]}
    assert set(by_topic) == {"order", "execution", "position"}
    push = by_topic["position"]
    assert list(push) == ["id", "topic", "creationTime", "data"]
    assert isinstance(push["id"], str) and type(push["creationTime"]) is int
    row = push["data"][0]
    assert (row["symbol"], row["side"], row["size"], row["positionIdx"]) == (
        "BTCUSDT",
        "Buy",
        "0.01",
        0,
    )
    assert "entryPrice" in row and "avgPrice" not in row
    assert by_topic["execution"]["data"][0]["seq"] == row["seq"]
    assert by_topic["order"]["data"][0]["orderStatus"] == "Filled"
    await sim.change_position("BTCUSDT", 0, stop_loss=Decimal("60000"))
    edited = (await recv_until(ws, lambda f: f.get("topic") == "position"))["data"][0]
    assert (edited["stopLoss"], edited["seq"]) == ("60000", row["seq"])
    assert int(edited["updatedTime"]) >= int(row["updatedTime"])
    await sim.close_position("BTCUSDT", 0)
    closed = (await recv_until(ws, lambda f: f.get("topic") == "position"))["data"][0]
    assert (closed["side"], closed["size"], closed["stopLoss"]) == ("", "0", "0")
    assert closed["seq"] > row["seq"]
    await ws.close()


async def test_order_action_without_change_still_pushes(
    sim: SimServer, session: aiohttp.ClientSession
) -> None:
    await sim.open_position("ETHUSDT", "Sell", Decimal("0.1"))
    ws = await private_ws(session, sim, ["position.linear"])
    await sim.touch("ETHUSDT")
    push = await recv_json(ws)
    assert push["topic"] == "position.linear"
    assert (push["data"][0]["side"], push["data"][0]["size"]) == ("Sell", "0.1")
    await ws.close()


async def test_hedge_push_carries_both_rows(sim: SimServer, session: aiohttp.ClientSession) -> None:
    await sim.set_position_mode("SOLUSDT", PositionMode.HEDGE)
    ws = await private_ws(session, sim, ["position"])
    await sim.open_position("SOLUSDT", "Buy", Decimal("1.0"), position_idx=1)
    push = await recv_json(ws)
    assert [(r["positionIdx"], r["side"]) for r in push["data"]] == [(1, "Buy"), (2, "")]
    await ws.close()


@pytest.mark.parametrize("value", ["10s", "601s", "11m", "soon"])
async def test_max_active_time_out_of_range_is_refused(
    sim: SimServer, session: aiohttp.ClientSession, value: str
) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as err:
        await session.ws_connect(f"{sim.private_ws_url}?max_active_time={value}")
    assert err.value.status == 400


async def test_max_active_time_is_accepted(sim: SimServer, session: aiohttp.ClientSession) -> None:
    ws = await private_ws(session, sim, query="?max_active_time=2m")
    assert [c.max_active_s for c in sim.connections] == [120.0]
    await ws.close()


async def test_idle_scan_cuts_quiet_sockets_only(session: aiohttp.ClientSession) -> None:
    config = SimConfig(symbols=2, idle_scan_s=0.05, default_max_active_s=0.3)
    async with SimServer(config) as sim:
        quiet = await session.ws_connect(sim.public_ws_url)
        busy = await private_ws(session, sim)
        # A client pinging every 0.1 s outlives several 0.3 s windows.
        for _ in range(10):
            await send(busy, {"op": "ping"})
            assert (await recv_json(busy))["op"] == "pong"
            await asyncio.sleep(0.1)
        assert not busy.closed
        cut = await quiet.receive(timeout=3 * UNIT_S)
        assert cut.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)
        assert quiet.close_code != 1000  # an abort, not a close handshake
        await wait_for(lambda: len(sim.connections) == 1, what="the quiet socket to be forgotten")
        await busy.close()
