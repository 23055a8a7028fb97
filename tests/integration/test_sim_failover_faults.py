"""The simulator's failover switches on the wire: lagging and reordered position/list, black
holes, a quiet market (issue 19)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import aiohttp
import pytest

from bybit_hybrid.sim import SimConfig, SimServer
from tests.integration.sim_support import (
    control,
    private_ws,
    public_ws,
    recv_json,
    send,
    signed_get,
)
from tests.support import UNIT_S, wait_for

LIST_QUERY = "category=linear&settleCoin=USDT"
LIST = "/v5/position/list"


@pytest.fixture
async def sim() -> AsyncIterator[SimServer]:
    async with SimServer(SimConfig(symbols=6, positions=2, rate_hz=20, seed=4)) as server:
        yield server


async def _armed(session: aiohttp.ClientSession, sim: SimServer) -> dict[str, Any]:
    async with session.get(f"{sim.base_url}/sim/fault") as resp:
        armed: dict[str, Any] = (await resp.json())["result"]
    return armed


async def _listed(session: aiohttp.ClientSession, sim: SimServer) -> set[str]:
    resp, body = await signed_get(session, sim, LIST, LIST_QUERY)
    assert resp.status == 200 and body["retCode"] == 0, body
    return {row["symbol"] for row in body["result"]["list"]}


async def test_a_lagging_position_list_answers_from_the_past(
    sim: SimServer, session: aiohttp.ClientSession
) -> None:
    sim.pause_ticks()
    before = await _listed(session, sim)
    lag_ms = int(1000 * UNIT_S)
    await control(session, sim, "/sim/fault/position_lag", {"ms": lag_ms})
    await sim.open_position("SOLUSDT", "Buy", Decimal("1"))
    opened_at = time.monotonic()
    # The open is on the exchange (its private push went out) but the listing lags.
    assert await _listed(session, sim) == before
    await wait_for(
        lambda: time.monotonic() - opened_at > lag_ms / 1000, 3 * UNIT_S, "the lag to pass"
    )
    listed: set[str] = set()

    async def caught_up() -> bool:
        listed.update(await _listed(session, sim))
        return "SOLUSDT" in listed

    deadline = time.monotonic() + 2 * UNIT_S
    while not await caught_up():
        assert time.monotonic() < deadline, "position/list never caught up"
        await asyncio.sleep(0.05 * UNIT_S)
    # A symbol query lags too, and the switch turns off.
    await sim.close_position("SOLUSDT")
    _, body = await signed_get(session, sim, LIST, "category=linear&symbol=SOLUSDT")
    assert Decimal(body["result"]["list"][0]["size"]) == 1
    assert (await _armed(session, sim))["position_list_lag_ms"] == lag_ms
    await control(session, sim, "/sim/fault/position_lag", {"ms": 0})
    assert "SOLUSDT" not in await _listed(session, sim)


async def test_reordered_position_list_answers_arrive_out_of_order(
    sim: SimServer, session: aiohttp.ClientSession
) -> None:
    await control(session, sim, "/sim/fault/position_reorder", {"ms": int(400 * UNIT_S)})
    order: list[int] = []

    async def one(n: int) -> None:
        await signed_get(session, sim, LIST, f"{LIST_QUERY}&limit={n + 1}")
        order.append(n)

    await asyncio.gather(*(one(n) for n in range(8)))
    assert sorted(order) == list(range(8)) and order != list(range(8))
    await control(session, sim, "/sim/fault/clear", {})
    assert (await _armed(session, sim))["position_list_reorder_ms"] == 0


async def test_a_black_hole_takes_open_and_new_sockets(
    sim: SimServer, session: aiohttp.ClientSession
) -> None:
    ws = await public_ws(session, sim, ["tickers.BTCUSDT"])
    priv = await private_ws(session, sim)
    result = await control(session, sim, "/sim/fault/blackhole", {"target": "public"})
    assert result == {"connections": 1}
    for socket in (ws, await session.ws_connect(sim.public_ws_url)):
        await send(socket, {"op": "ping"})
        await socket.ping()  # a protocol-level ping is not answered either
        with pytest.raises(TimeoutError):
            await socket.receive(timeout=0.3 * UNIT_S)
        assert not socket.closed  # TCP and the WebSocket stay up
    await send(priv, {"op": "ping"})
    assert (await recv_json(priv))["op"] == "pong"  # the private socket is not targeted
    await control(session, sim, "/sim/fault/blackhole", {"target": "public", "on": False})
    fresh = await public_ws(session, sim)
    await send(fresh, {"op": "ping"})
    assert (await recv_json(fresh))["ret_msg"] == "pong"


async def test_a_quiet_market_moves_trades_but_never_the_mark(
    sim: SimServer, session: aiohttp.ClientSession
) -> None:
    await control(session, sim, "/sim/market/quiet", {"symbol": "BTCUSDT"})
    mark = sim.exchange.prices.mark("BTCUSDT")
    ws = await public_ws(session, sim, ["tickers.BTCUSDT"])
    deltas: list[dict[str, Any]] = []
    while len(deltas) < 20:
        frame = await recv_json(ws)
        if frame.get("type") == "delta":
            deltas.append(frame["data"])
    assert all("markPrice" not in d and "indexPrice" not in d for d in deltas)
    assert any("lastPrice" in d for d in deltas)  # trades go on
    assert sim.exchange.prices.mark("BTCUSDT") == mark
    await control(session, sim, "/sim/market/quiet", {"symbol": "BTCUSDT", "on": False})
