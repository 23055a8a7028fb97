"""Simulator REST on the wire: signing errors, rate limits, position/list cursors, trading-stop,
order/create and the public market endpoints."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from decimal import Decimal
from urllib.parse import quote

import aiohttp
import pytest
from yarl import URL

from bybit_hybrid.sim import SimConfig, SimServer
from tests.integration.sim_support import (
    now_ms,
    private_ws,
    recv_until,
    signed_get,
    signed_headers,
    signed_post,
)


@pytest.fixture
async def sim() -> AsyncIterator[SimServer]:
    limits = {"/v5/position/list": 50, "/v5/position/trading-stop": 3, "/v5/order/create": 10}
    config = SimConfig(symbols=8, positions=6, rate_hz=20, seed=2, rate_limits_per_s=limits)
    async with SimServer(config) as server:
        server.pause_ticks()
        yield server


async def test_market_time(sim: SimServer, session: aiohttp.ClientSession) -> None:
    async with session.get(f"{sim.base_url}/v5/market/time") as resp:
        body = await resp.json()
    assert list(body) == ["retCode", "retMsg", "result", "retExtInfo", "time"]
    assert (body["retCode"], body["retMsg"], body["retExtInfo"]) == (0, "OK", {})
    assert type(body["time"]) is int
    assert body["result"]["timeNano"].startswith(body["result"]["timeSecond"])


async def test_signed_get_has_rate_limit_headers(
    sim: SimServer, session: aiohttp.ClientSession
) -> None:
    resp, body = await signed_get(
        session, sim, "/v5/position/list", "category=linear&settleCoin=USDT"
    )
    assert body["retCode"] == 0
    assert resp.headers["X-Bapi-Limit"] == "50"
    assert int(resp.headers["X-Bapi-Limit-Status"]) == 49
    assert abs(int(resp.headers["X-Bapi-Limit-Reset-Timestamp"]) - now_ms()) < 5000
    assert all("avgPrice" in row and "entryPrice" not in row for row in body["result"]["list"])


async def test_key_sign_and_timestamp_errors(
    sim: SimServer, session: aiohttp.ClientSession
) -> None:
    query = "category=linear&symbol=BTCUSDT"
    url = f"{sim.base_url}/v5/position/list?{query}"
    headers = signed_headers(sim, query)
    async with session.get(url, headers={**headers, "X-BAPI-API-KEY": "nope"}) as resp:
        assert resp.status == 200
        assert (await resp.json())["retCode"] == 10003
        assert (await resp.json())["retMsg"] == "API key is invalid."
    async with session.get(url, headers={**headers, "X-BAPI-SIGN": "00" * 32}) as resp:
        body = await resp.json()
    ts = headers["X-BAPI-TIMESTAMP"]
    assert body["retCode"] == 10004
    assert body["retMsg"] == f"error sign! origin_string[{ts}{sim.api_key}5000{query}]"
    old_ms = now_ms() - 20_000
    stale = signed_headers(sim, query, ts_ms=old_ms, recv_window_ms=15000)
    async with session.get(url, headers=stale) as resp:
        body = await resp.json()
    assert body["retCode"] == 10002
    assert body["retMsg"].startswith(
        "invalid request, please check your server timestamp or recv_window param. "
        f"req_timestamp[{old_ms}],server_timestamp["
    )
    assert body["retMsg"].endswith(",recv_window[15000]")
    wide = signed_headers(sim, query, ts_ms=old_ms, recv_window_ms=30000)
    async with session.get(url, headers=wide) as resp:
        assert (await resp.json())["retCode"] == 0
    future = signed_headers(sim, query, ts_ms=now_ms() + 3000)
    async with session.get(url, headers=future) as resp:
        assert (await resp.json())["retCode"] == 10002


async def test_post_signature_covers_the_raw_bytes(
    sim: SimServer, session: aiohttp.ClientSession
) -> None:
    await sim.open_position("BTCPERP", "Buy", Decimal("0.001"))
    body = '{"category":  "linear", "symbol": "BTCPERP",   "positionIdx": 0, "stopLoss": "60000"}'
    _, reply = await signed_post(session, sim, "/v5/position/trading-stop", body)
    assert reply == {
        "retCode": 0,
        "retMsg": "OK",
        "result": {},
        "retExtInfo": {},
        "time": reply["time"],
    }
    reserialized = json.dumps(json.loads(body), separators=(",", ":"))
    headers = {**signed_headers(sim, reserialized), "Content-Type": "application/json"}
    url = f"{sim.base_url}/v5/position/trading-stop"
    async with session.post(url, data=body.encode(), headers=headers) as resp:
        assert (await resp.json())["retCode"] == 10004
    _, garbage = await signed_post(session, sim, "/v5/position/trading-stop", "{not json")
    assert garbage["retCode"] == 10001


async def test_trading_stop_rate_limit(sim: SimServer, session: aiohttp.ClientSession) -> None:
    body = '{"category": "linear", "symbol": "BTCUSDT", "positionIdx": 0, "stopLoss": "1"}'
    replies = [await signed_post(session, sim, "/v5/position/trading-stop", body) for _ in range(4)]
    assert [r[1]["retCode"] for r in replies[:3]] == [0, 34040, 34040]
    resp, last = replies[3]
    assert (last["retCode"], last["retMsg"]) == (10006, "Too many visits!")
    assert resp.headers["X-Bapi-Limit"] == "3"
    assert resp.headers["X-Bapi-Limit-Status"] == "0"
    assert int(resp.headers["X-Bapi-Limit-Reset-Timestamp"]) > now_ms() - 1000


async def test_position_list_percent_cursor_round_trip(
    sim: SimServer, session: aiohttp.ClientSession
) -> None:
    seen: list[str] = []
    cursor = ""
    for _ in range(10):
        query = "category=linear&limit=2&settleCoin=USDT" + (f"&cursor={cursor}" if cursor else "")
        _, body = await signed_get(session, sim, "/v5/position/list", query)
        assert body["retCode"] == 0, body
        seen += [row["symbol"] for row in body["result"]["list"]]
        cursor = body["result"]["nextPageCursor"]
        if not cursor:
            break
        assert "%3A" in cursor and "%2C" in cursor
    expected = sorted(
        p.symbol
        for p in sim.exchange.open_positions()
        if sim.exchange.instruments[p.symbol].settle_coin == "USDT"
    )
    assert seen == expected
    assert len(seen) > 2
    # A client that percent-encodes the cursor again (bapi style) signs what it sends: also fine.
    _, first = await signed_get(
        session, sim, "/v5/position/list", "category=linear&limit=1&settleCoin=USDT"
    )
    escaped = quote(first["result"]["nextPageCursor"], safe="")
    _, second = await signed_get(
        session,
        sim,
        "/v5/position/list",
        f"category=linear&cursor={escaped}&limit=1&settleCoin=USDT",
    )
    assert second["retCode"] == 0
    assert second["result"]["list"][0]["symbol"] == seen[1]


async def test_position_list_param_error(sim: SimServer, session: aiohttp.ClientSession) -> None:
    resp, body = await signed_get(session, sim, "/v5/position/list", "category=linear")
    assert resp.status == 200
    assert body["retCode"] == 10001


async def test_order_create_pushes_and_validates(
    sim: SimServer, session: aiohttp.ClientSession
) -> None:
    ws = await private_ws(session, sim, ["position"])
    order = json.dumps(
        {"category": "linear", "symbol": "ETHUSDT", "side": "Buy", "orderType": "Market",
         "qty": "0.05", "positionIdx": 0, "orderLinkId": "link-1"}
    )  # fmt: skip
    _, reply = await signed_post(session, sim, "/v5/order/create", order)
    assert reply["retCode"] == 0
    assert set(reply["result"]) == {"orderId", "orderLinkId"}
    assert reply["result"]["orderLinkId"] == "link-1"
    push = await recv_until(ws, lambda f: f.get("topic") == "position")
    assert push["data"][0]["symbol"] == "ETHUSDT"
    bad_qty = order.replace('"0.05"', '"0.005"')
    _, reply = await signed_post(session, sim, "/v5/order/create", bad_qty)
    assert reply["retCode"] == 10001
    assert not sim.exchange.slot("BNBUSDT", 0).is_open
    reduce = json.dumps(
        {"category": "linear", "symbol": "BNBUSDT", "side": "Buy", "orderType": "Market",
         "qty": "0.1", "reduceOnly": True}
    )  # fmt: skip
    _, reply = await signed_post(session, sim, "/v5/order/create", reduce)
    assert reply["retCode"] == 110017
    await ws.close()


async def test_tickers_and_instruments(sim: SimServer, session: aiohttp.ClientSession) -> None:
    await sim.set_mark("BTCUSDT", Decimal("65432.10"))
    url = f"{sim.base_url}/v5/market/tickers?category=linear&symbol=BTCUSDT"
    async with session.get(url) as resp:
        body = await resp.json()
    row = body["result"]["list"][0]
    assert row["markPrice"] == "65432.10"
    assert all(isinstance(v, str) for v in row.values())
    url = f"{sim.base_url}/v5/market/instruments-info?category=linear&limit=3"
    async with session.get(url) as resp:
        page = await resp.json()
    assert len(page["result"]["list"]) == 3
    assert page["result"]["nextPageCursor"]
    cursor = page["result"]["nextPageCursor"]
    url = f"{sim.base_url}/v5/market/instruments-info?category=linear&limit=3&cursor={cursor}"
    async with session.get(URL(url, encoded=True)) as resp:
        second = await resp.json()
    assert second["result"]["list"][0]["symbol"] == list(sim.exchange.instruments)[3]
