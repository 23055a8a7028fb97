"""Multi-account simulator on the wire: each key sees its own positions, pushes and rate limits."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import aiohttp
import pytest

from bybit_hybrid.sim import SimConfig, SimServer
from bybit_hybrid.wire.signing import Credentials
from tests.integration.sim_support import now_ms, recv_json, recv_until, send, signed_get
from tests.support import UNIT_S

_LIST = "/v5/position/list"


@dataclass(frozen=True)
class _Key:
    """One account's REST target (base URL and its key pair)."""

    base_url: str
    api_key: str
    api_secret: str


def _key(sim: SimServer, name: str) -> _Key:
    acct = sim.accounts.get(name)
    return _Key(sim.base_url, acct.api_key, acct.api_secret)


@pytest.fixture
async def sim() -> AsyncIterator[SimServer]:
    config = SimConfig(symbols=4, seed=3, accounts=3, rate_limits_per_s={_LIST: 3})
    async with SimServer(config) as server:
        server.pause_ticks()
        yield server


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


async def _rows(session: aiohttp.ClientSession, key: _Key) -> list[dict[str, Any]]:
    _resp, body = await signed_get(session, key, _LIST, "category=linear&settleCoin=USDT")
    assert body["retCode"] == 0, body
    return list(body["result"]["list"])


async def _private(session: aiohttp.ClientSession, sim: SimServer, key: _Key) -> Any:
    ws = await session.ws_connect(sim.private_ws_url)
    expires = now_ms() + 5000
    sig = Credentials(key.api_key, key.api_secret).ws_auth_signature(expires)
    await send(ws, {"op": "auth", "args": [key.api_key, expires, sig]})
    assert (await recv_json(ws))["success"] is True
    await send(ws, {"op": "subscribe", "args": ["position"], "req_id": "p"})
    assert (await recv_json(ws))["success"] is True
    return ws


def test_accounts_have_distinct_keys_and_the_first_keeps_the_demo_pair() -> None:
    sim = SimServer(SimConfig(accounts=3))
    keys = [(a.name, a.api_key) for a in sim.accounts]
    assert keys == [
        ("acct1", "SIMDEMOKEY000001"),
        ("acct2", "SIMDEMOKEY000002"),
        ("acct3", "SIMDEMOKEY000003"),
    ]
    assert sim.api_key == "SIMDEMOKEY000001"
    assert len({a.api_secret for a in sim.accounts}) == 3
    assert "SECRET" not in repr(list(sim.accounts)) and "SECRET" not in repr(sim)
    with pytest.raises(ValueError, match="accounts must be between 1"):
        SimConfig(accounts=0)


async def test_a_key_never_sees_another_accounts_positions(
    sim: SimServer, session: aiohttp.ClientSession
) -> None:
    symbols = list(sim.exchange.instruments)
    await sim.account("acct2").open_position(symbols[1], "Buy", Decimal("0.2"))
    await sim.account("acct3").open_position(symbols[2], "Sell", Decimal("0.3"))
    rows1 = await _rows(session, _key(sim, "acct1"))
    rows2 = await _rows(session, _key(sim, "acct2"))
    rows3 = await _rows(session, _key(sim, "acct3"))
    assert rows1 == []
    assert [(r["symbol"], r["side"], r["size"]) for r in rows2] == [(symbols[1], "Buy", "0.2")]
    assert [(r["symbol"], r["side"], r["size"]) for r in rows3] == [(symbols[2], "Sell", "0.3")]
    _, body = await signed_get(
        session, _key(sim, "acct2"), _LIST, f"category=linear&symbol={symbols[2]}"
    )
    assert [r["size"] for r in body["result"]["list"]] == ["0"]  # acct3's symbol is flat here


async def test_private_pushes_go_only_to_the_accounts_own_sockets(
    sim: SimServer, session: aiohttp.ClientSession
) -> None:
    symbol = next(iter(sim.exchange.instruments))
    ws1 = await _private(session, sim, _key(sim, "acct1"))
    ws2 = await _private(session, sim, _key(sim, "acct2"))
    await sim.account("acct2").open_position(symbol, "Buy", Decimal("0.1"))
    push = await recv_until(ws2, lambda f: f.get("topic") == "position")
    assert push["data"][0]["size"] == "0.1"
    await sim.account("acct1").open_position(symbol, "Sell", Decimal("0.4"))
    first = await recv_until(ws1, lambda f: f.get("topic") == "position")
    # acct1's socket saw its own open first, never acct2's; acct2's saw nothing of acct1's.
    assert (first["data"][0]["side"], first["data"][0]["size"]) == ("Sell", "0.4")
    with pytest.raises(TimeoutError):
        await ws2.receive(timeout=UNIT_S / 2)
    await ws1.close()
    await ws2.close()


async def test_rate_limits_are_per_key(sim: SimServer, session: aiohttp.ClientSession) -> None:
    key1, key2 = _key(sim, "acct1"), _key(sim, "acct2")
    codes = [(await signed_get(session, key1, _LIST, "category=linear&settleCoin=USDT"))[1]
             ["retCode"] for _ in range(4)]  # fmt: skip
    assert codes[:3] == [0, 0, 0] and codes[3] == 10006
    resp, body = await signed_get(session, key2, _LIST, "category=linear&settleCoin=USDT")
    assert body["retCode"] == 0
    assert resp.headers["X-Bapi-Limit-Status"] == "2"


async def test_the_market_is_shared_and_fires_every_accounts_stops(
    sim: SimServer, session: aiohttp.ClientSession
) -> None:
    symbol = next(iter(sim.exchange.instruments))
    mark = sim.exchange.prices.mark(symbol)
    tick = sim.exchange.instruments[symbol].tick_size
    acct2 = sim.account("acct2")
    await acct2.open_position(symbol, "Buy", Decimal("0.1"))
    await acct2.change_position(symbol, stop_loss=mark - 10 * tick)
    await sim.account("acct3").open_position(symbol, "Buy", Decimal("0.1"))
    await sim.set_prices(symbol, mark=mark - 20 * tick, last=mark - 20 * tick)
    rows2 = await _rows(session, _key(sim, "acct2"))
    rows3 = await _rows(session, _key(sim, "acct3"))
    assert rows2 == []  # its stop fired on the shared price move
    assert [Decimal(r["markPrice"]) for r in rows3] == [mark - 20 * tick]
    closes = [e for e in acct2.history() if e["kind"] == "close"]
    assert [e["reason"] for e in closes] == ["stop_loss"]
    assert [e["kind"] for e in sim.account("acct1").history()] == []


async def test_control_routes_select_the_account(
    sim: SimServer, session: aiohttp.ClientSession
) -> None:
    symbol = next(iter(sim.exchange.instruments))
    base = sim.base_url
    body = {"account": "acct3", "symbol": symbol, "side": "Buy", "qty": "0.1"}
    async with session.post(f"{base}/sim/position/open", json=body) as resp:
        assert resp.status == 200, await resp.text()
    async with session.post(
        f"{base}/sim/position/touch?account=acct2", data=json.dumps({"symbol": symbol})
    ) as resp:
        assert resp.status == 200, await resp.text()
    async with session.get(f"{base}/sim/state?account=acct3") as resp:
        state = (await resp.json())["result"]
    assert state["account"] == "acct3" and state["accounts"] == ["acct1", "acct2", "acct3"]
    assert [p["symbol"] for p in state["positions"]] == [symbol]
    async with session.get(f"{base}/sim/state") as resp:
        assert (await resp.json())["result"]["positions"] == []  # the default account
    async with session.get(f"{base}/sim/history?account=acct3") as resp:
        kinds = [e["kind"] for e in (await resp.json())["result"]]
    assert "open" in kinds
    async with session.post(f"{base}/sim/position/open", json={**body, "account": "nope"}) as resp:
        error = (await resp.json())["error"]
    assert resp.status == 400
    assert "unknown account 'nope' (accounts: acct1, acct2, acct3)" in error


async def test_initial_positions_differ_per_account() -> None:
    async with SimServer(SimConfig(symbols=5, accounts=3, positions=2)) as sim:
        books = {
            a.name: [(p.symbol, p.side.value) for p in a.exchange.open_positions()]
            for a in sim.accounts
        }
    assert all(len(book) == 2 for book in books.values())
    assert len({tuple(book) for book in books.values()}) == 3


async def test_cli_prints_every_accounts_key() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bybit_hybrid", "sim", "--accounts", "3", "--duration", "30",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        lines = [
            (await asyncio.wait_for(proc.stdout.readline(), 10 * UNIT_S)).decode() for _ in range(4)
        ]
    finally:
        proc.terminate()
        await proc.wait()
    assert lines[0].startswith("listening on http://127.0.0.1:")
    for n, line in enumerate(lines[1:], start=1):
        assert line.startswith(f"api key: SIMDEMOKEY{n:06d}  api secret: SIMDEMOSECRET"), line
        assert line.rstrip().endswith(f"account: acct{n}"), line


async def test_a_lagging_position_list_lags_for_every_account(
    sim: SimServer, session: aiohttp.ClientSession
) -> None:
    symbol = list(sim.exchange.instruments)[1]
    key2 = _key(sim, "acct2")
    sim.lag_position_list(int(60_000 * UNIT_S))  # far longer than this test
    await sim.account("acct2").open_position(symbol, "Buy", Decimal("0.1"))
    await sim.account("acct1").open_position(symbol, "Sell", Decimal("0.2"))
    # Both opens are on the exchange (their pushes went out) but both listings lag.
    assert await _rows(session, key2) == []
    assert await _rows(session, _key(sim, "acct1")) == []
    sim.lag_position_list(0)
    assert [r["size"] for r in await _rows(session, key2)] == ["0.1"]


async def test_socket_faults_can_target_one_accounts_private_sockets(
    sim: SimServer, session: aiohttp.ClientSession
) -> None:
    ws1 = await _private(session, sim, _key(sim, "acct1"))
    ws2 = await _private(session, sim, _key(sim, "acct2"))
    async with session.post(
        f"{sim.base_url}/sim/fault/drop", json={"target": "private", "account": "acct2"}
    ) as resp:
        assert (await resp.json())["result"] == {"connections": 1}
    closed = await ws2.receive(timeout=2 * UNIT_S)
    assert closed.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    assert sim.faults.silence("private", account="acct1") == 1
    assert sim.faults.silence("public", account="acct1") == 0  # public sockets have no account
    with pytest.raises(ValueError, match="unknown account 'acct9'"):
        sim.faults.silence("private", account="acct9")
    await ws1.close()
