"""The REST client over loopback HTTP, against servers that verify signatures on the raw bytes."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bybit_hybrid.protocol.domain import PositionKey, Side
from bybit_hybrid.transport.errors import (
    AuthError,
    InvalidRequestError,
    NotModifiedError,
    ServerError,
    TransportError,
    ZeroPositionError,
)
from bybit_hybrid.transport.http import AiohttpBackend
from bybit_hybrid.transport.rest import BybitRestClient
from bybit_hybrid.wire.messages import OrderCreateRequest, TradingStopRequest
from bybit_hybrid.wire.signing import Credentials, rest_payload, verify

KEY, SECRET = "LOCALKEY0001", "local-secret-4d2b"
CURSOR = "BTCUSDT%3A0%2CBTCUSDT%3A0"  # F16's cursor, still percent-encoded
SERVER_AHEAD_MS = 20_000  # the server's clock runs ahead: the first signed call hits 10002


def _row(symbol: str, idx: int, side: str) -> dict[str, Any]:
    return {"positionIdx": idx, "symbol": symbol, "side": side, "size": "1", "avgPrice": "100"}


@dataclass
class FakeBybit:
    """A small Bybit: checks X-BAPI-* over the exact bytes received, pages with F16's cursor."""

    raw_queries: list[str] = field(default_factory=list)
    raw_bodies: list[bytes] = field(default_factory=list)
    stops: dict[tuple[str, int], str] = field(default_factory=dict)
    fail_next: int = 0
    stall: bool = False

    def now_ms(self) -> int:
        return int(time.time() * 1000) + SERVER_AHEAD_MS

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._faults])
        app.router.add_get("/v5/market/time", self._time)
        app.router.add_get("/v5/position/list", self._positions)
        app.router.add_post("/v5/position/trading-stop", self._trading_stop)
        app.router.add_post("/v5/order/create", self._order)
        return app

    @web.middleware
    async def _faults(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if self.stall:
            await asyncio.Event().wait()
        if self.fail_next > 0:
            self.fail_next -= 1
            return web.Response(status=502, text="<html>502 bad gateway</html>")
        response: web.StreamResponse = await handler(request)
        return response

    def _reply(self, result: object = None, code: int = 0, msg: str = "OK") -> web.Response:
        body = {"retCode": code, "retMsg": msg, "result": result or {}, "time": self.now_ms()}
        return web.json_response(body, headers={"X-Bapi-Limit": "50", "X-Bapi-Limit-Status": "49"})

    def _auth_failure(self, request: web.Request, signed: str) -> web.Response | None:
        """Bybit's checks in its order: timestamp window, then the signature over `signed`."""
        ts, recv = request.headers["X-BAPI-TIMESTAMP"], request.headers["X-BAPI-RECV-WINDOW"]
        now_ms = self.now_ms()
        if not now_ms - int(recv) <= int(ts) < now_ms + 1000:
            msg = (
                "invalid request, please check your server timestamp or recv_window param. "
                f"req_timestamp[{ts}],server_timestamp[{now_ms}],recv_window[{recv}]"
            )
            return self._reply(code=10002, msg=msg)
        payload = rest_payload(request.headers["X-BAPI-API-KEY"], int(ts), int(recv), signed)
        if not verify(SECRET, payload, request.headers["X-BAPI-SIGN"]):
            return self._reply(code=10004, msg=f"error sign! origin_string[{payload}]")
        return None

    async def _time(self, request: web.Request) -> web.Response:
        now_ms = self.now_ms()
        return self._reply({"timeSecond": str(now_ms // 1000), "timeNano": str(now_ms * 10**6)})

    async def _positions(self, request: web.Request) -> web.Response:
        raw_query = request.raw_path.partition("?")[2]
        self.raw_queries.append(raw_query)
        if failure := self._auth_failure(request, raw_query):
            return failure
        coin = request.query["settleCoin"]
        if coin == "USDC":
            return self._reply({"list": [_row("BTCPERP", 0, "Sell")], "nextPageCursor": ""})
        if "cursor" not in request.query:
            return self._reply({"list": [_row("BTCUSDT", 1, "Buy")], "nextPageCursor": CURSOR})
        if not raw_query.endswith(f"&cursor={CURSOR}"):
            return self._reply(code=10001, msg=f"params error: cursor {raw_query}")
        return self._reply({"list": [_row("BTCUSDT", 2, "Sell")], "nextPageCursor": ""})

    async def _trading_stop(self, request: web.Request) -> web.Response:
        raw = await request.read()
        self.raw_bodies.append(raw)
        if failure := self._auth_failure(request, raw.decode()):
            return failure
        body = json.loads(raw)
        key = (body["symbol"], body["positionIdx"])
        if self.stops.get(key) == body["stopLoss"]:
            return self._reply(code=34040, msg="not modified")
        self.stops[key] = body["stopLoss"]
        return self._reply()

    async def _order(self, request: web.Request) -> web.Response:
        raw = await request.read()
        self.raw_bodies.append(raw)
        if failure := self._auth_failure(request, raw.decode()):
            return failure
        return self._reply({"orderId": "ord-" + json.loads(raw)["orderLinkId"]})


@dataclass
class Env:
    bybit: FakeBybit
    base_url: str
    sleeps: list[float]

    def client(self, secret: str = SECRET, **options: Any) -> BybitRestClient:
        async def no_wait(seconds: float) -> None:
            self.sleeps.append(seconds)

        return BybitRestClient(self.base_url, Credentials(KEY, secret), sleep=no_wait, **options)


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    bybit = FakeBybit()
    server = TestServer(bybit.app(), host="127.0.0.1", port=0)
    await server.start_server()
    try:
        yield Env(bybit, f"http://127.0.0.1:{server.port}", [])
    finally:
        await server.close()


STOP = TradingStopRequest(
    category="linear", symbol="BTCUSDT", positionIdx=1, tpslMode="Full", stopLoss="95.5"
)


async def test_drifted_clock_resyncs_and_pages_with_the_verbatim_cursor(env: Env) -> None:
    async with env.client() as client:
        page = await client.get_positions()

    assert sorted(p.key for p in page.positions) == [
        PositionKey("BTCPERP", 0),
        PositionKey("BTCUSDT", 1),
        PositionKey("BTCUSDT", 2),
    ]
    assert abs(client.clock_offset_ms - SERVER_AHEAD_MS) < 1000
    assert env.bybit.raw_queries[-2] == (
        f"category=linear&settleCoin=USDT&limit=200&cursor={CURSOR}"
    )
    assert client.rate_limits["/v5/position/list"].remaining == 49


async def test_trading_stop_then_not_modified_and_orders(env: Env) -> None:
    async with env.client() as client:
        await client.sync_clock()
        assert await client.apply_trading_stop(STOP) is True
        with pytest.raises(NotModifiedError):
            await client.set_trading_stop(STOP)
        order = OrderCreateRequest(
            category="linear",
            symbol="BTCUSDT",
            side="Sell",
            orderType="Market",
            qty="1",
            positionIdx=1,
            reduceOnly=True,
            orderLinkId="close-1",
        )
        assert await client.create_order(order) == "ord-close-1"
    assert json.loads(env.bybit.raw_bodies[0])["stopLoss"] == "95.5"


async def test_a_wrong_secret_fails_auth_without_leaking(env: Env) -> None:
    async with env.client(secret="wrong-secret-zz") as client:
        await client.sync_clock()
        with pytest.raises(AuthError) as caught:
            await client.get_positions(("USDT",))
    text = str(caught.value)
    assert "retCode 10004" in text
    assert "LOCA…" in text
    assert KEY not in text
    assert "wrong-secret-zz" not in text


async def test_bad_gateway_is_retried_then_reported(env: Env) -> None:
    env.bybit.fail_next = 2
    async with env.client() as client:
        await client.sync_clock()
        await client.set_trading_stop(STOP)
        env.bybit.fail_next = 10
        with pytest.raises(ServerError, match=r"answered http 502: '<html>502 bad gateway"):
            await client.get_positions(("USDC",))
    assert env.sleeps == [0.25, 0.5, 0.25, 0.5, 1.0]


async def test_timeout_becomes_a_transport_error(env: Env) -> None:
    env.bybit.stall = True
    backend = AiohttpBackend(total_timeout_s=0.2)
    async with env.client(backend=backend, max_retries=0) as client:
        with pytest.raises(TransportError, match=r"/v5/market/time timed out") as caught:
            await client.sync_clock()
    assert caught.value.reached_server
    await backend.close()


async def test_connection_refused_retries_even_an_order() -> None:
    with socket.socket() as probe:  # a port that was just free, so nothing listens on it
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sleeps: list[float] = []

    async def no_wait(seconds: float) -> None:
        sleeps.append(seconds)

    order = OrderCreateRequest(
        category="linear", symbol="BTCUSDT", side="Buy", orderType="Market", qty="1"
    )
    async with BybitRestClient(
        f"http://127.0.0.1:{port}", Credentials(KEY, SECRET), sleep=no_wait, max_retries=2
    ) as client:
        with pytest.raises(TransportError, match="/v5/order/create could not connect") as caught:
            await client.create_order(order)
    assert not caught.value.reached_server
    assert sleeps == [0.25, 0.5]


async def test_a_lent_session_stays_open(env: Env) -> None:
    async with aiohttp.ClientSession() as session:
        async with env.client(backend=AiohttpBackend(session)) as client:
            await client.sync_clock()
        assert not session.closed


def _sim() -> Any:
    """The embedded simulator module, or a skip while it is still being written."""
    sim_module = pytest.importorskip("bybit_hybrid.sim")
    if not hasattr(sim_module, "SimServer"):
        pytest.skip("bybit_hybrid.sim has no SimServer yet")
    return sim_module


def _on_tick(price: Decimal, tick: Decimal) -> str:
    return str((price / tick).to_integral_value() * tick)


async def test_simulator_positions_stops_and_orders() -> None:
    sim_module = _sim()
    sleeps: list[float] = []

    async def no_wait(seconds: float) -> None:
        sleeps.append(seconds)

    async with sim_module.SimServer(sim_module.SimConfig(symbols=4, positions=2)) as sim:
        credentials = Credentials(sim.api_key, sim.api_secret)
        async with BybitRestClient(sim.base_url, credentials, sleep=no_wait) as client:
            await client.sync_clock()
            page = await client.get_positions()
            instruments = await client.get_instruments()
            marks = {t.symbol: t.mark_price for t in await client.get_tickers()}

            assert len(page.positions) == 2
            assert all(p.is_open and p.entry_price for p in page.positions)
            position = page.positions[0]
            symbol, side = position.key.symbol, position.side
            mark, tick = marks[symbol], instruments[symbol].tick_size
            assert mark is not None and side is not None
            below, above = _on_tick(mark * Decimal("0.9"), tick), _on_tick(mark * 11 / 10, tick)
            good, bad = (below, above) if side is Side.BUY else (above, below)

            def stop(price: str, on: str = symbol) -> TradingStopRequest:
                return TradingStopRequest(
                    category="linear", symbol=on, positionIdx=0, tpslMode="Full", stopLoss=price
                )

            assert await client.apply_trading_stop(stop(good)) is True
            assert await client.apply_trading_stop(stop(good)) is False  # 34040
            with pytest.raises(InvalidRequestError, match=r"should (lower|greater) than"):
                await client.set_trading_stop(stop(bad))
            flat = next(s for s in instruments if s not in {p.key.symbol for p in page.positions})
            with pytest.raises(ZeroPositionError):
                await client.set_trading_stop(stop("1", on=flat))

            (updated,) = (await client.get_positions(symbol=symbol)).positions
            assert updated.stop_loss == Decimal(good)

            close = OrderCreateRequest(
                category="linear",
                symbol=symbol,
                side="Sell" if side is Side.BUY else "Buy",
                orderType="Market",
                qty=str(position.size),
                reduceOnly=True,
                orderLinkId="close-1",
            )
            assert await client.create_order(close)
            (closed,) = (await client.get_positions(symbol=symbol)).positions
            assert not closed.is_open  # a symbol query keeps the flat row


@pytest.mark.parametrize(("mode", "expected_sleeps"), [("10002", 0), ("10006", 1), ("5xx", 1)])
async def test_simulator_faults_are_survived(mode: str, expected_sleeps: int) -> None:
    sim_module = _sim()
    sleeps: list[float] = []

    async def no_wait(seconds: float) -> None:
        sleeps.append(seconds)

    async with sim_module.SimServer(sim_module.SimConfig(symbols=2, positions=1)) as sim:
        credentials = Credentials(sim.api_key, sim.api_secret)
        async with BybitRestClient(sim.base_url, credentials, sleep=no_wait) as client:
            sim.faults.rest_errors(mode, count=1)
            page = await client.get_positions()
    assert len(page.positions) == 1
    assert len(sleeps) == expected_sleeps
    assert all(0 <= s <= 1.0 for s in sleeps)
