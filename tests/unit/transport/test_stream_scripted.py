"""The whole facade on the public mock backends: scripted sockets and scripted REST, no network."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from typing import Any

from bybit_hybrid import BybitHybridStream
from bybit_hybrid.transport.http import (
    HttpResponse,
    MockBackend,
    RecordedRequest,
    envelope_response,
)
from bybit_hybrid.transport.ws import ScriptedConnection, ScriptedWsBackend
from tests.fixtures import frame
from tests.support import wait_for

SERVER_MS = 1_762_199_130_000
CANARY = "CANARY-s3cr3t-7f3a"


def _rest(request: RecordedRequest) -> HttpResponse:
    if request.path == "/v5/market/time":
        times = {"timeSecond": str(SERVER_MS // 1000), "timeNano": str(SERVER_MS * 1_000_000)}
        return envelope_response(times, time_ms=SERVER_MS)
    if request.path == "/v5/position/list":
        rows = json.loads(frame("F16"))["result"]["list"] if "USDT" in request.query else []
        return envelope_response(
            {"list": rows, "nextPageCursor": "", "category": "linear"}, time_ms=SERVER_MS
        )
    if request.path == "/v5/market/tickers":
        ticker = json.loads(frame("F10"))["data"]
        return envelope_response({"category": "linear", "list": [ticker]}, time_ms=SERVER_MS)
    raise AssertionError(f"unexpected {request.url}")


async def _next_sent(conn: ScriptedConnection, count: int) -> list[dict[str, Any]]:
    await wait_for(lambda: len(conn.sent) >= count, what=f"{count} frames sent on {conn.url}")
    return [json.loads(text) for text in conn.sent[:count]]


def _connection(ws: ScriptedWsBackend, path: str) -> ScriptedConnection:
    return next(c for c in ws.connections if c.url.endswith(path))


def _ack(conn: ScriptedConnection, request: dict[str, Any]) -> None:
    reply = {"success": True, "ret_msg": "", "op": "subscribe", "conn_id": "c"}
    conn.feed(json.dumps({**reply, "req_id": request["req_id"]}))


async def _go_live(ws: ScriptedWsBackend) -> tuple[ScriptedConnection, ScriptedConnection]:
    """Answers the auth and both subscriptions (position; the F16 position's ticker)."""
    await wait_for(lambda: len(ws.connections) == 2, what="both sockets")
    private = _connection(ws, "/v5/private")
    public = _connection(ws, "/v5/public/linear")
    (auth,) = await _next_sent(private, 1)
    assert auth["op"] == "auth" and auth["args"][0] == "key"
    assert auth["args"][1] > SERVER_MS  # expires is in the exchange's future
    private.feed(frame("F01"))
    sub = (await _next_sent(private, 2))[1]
    assert sub["args"] == ["position"]
    _ack(private, sub)
    (ticker_sub,) = await _next_sent(public, 1)
    assert ticker_sub["args"] == ["tickers.BTCUSDT"]
    _ack(public, ticker_sub)
    return private, public


async def test_bootstrap_auth_subscribe_and_events_without_a_network() -> None:
    events: list[dict[str, Any]] = []

    async def handler(name: str, payload: dict[str, Any]) -> None:
        assert name == "position_update" and payload["exchange"] == "bybit"
        events.append(payload["data"])

    http, ws = MockBackend(handler=_rest), ScriptedWsBackend()
    stream = BybitHybridStream(
        "key", "secret", handler, base_url="http://127.0.0.1:1", ws_backend=ws, http_backend=http
    )
    await stream.start()
    try:
        await stream.wait_ready(5)
        await wait_for(lambda: len(events) == 2, what="the open and its REST mark seed")
        assert [(e["source"], e["mark_price"]) for e in events] == [
            ("rest", Decimal("65120.5")),  # the row's own markPrice until a ticker is known
            ("rest", Decimal("66666.60")),  # seeded from /v5/market/tickers
        ]
        assert events[0]["entry_price"] == Decimal("65000")  # REST's avgPrice
        _, public = await _go_live(ws)
        public.feed(frame("F10").replace(b'"markPrice": "66666.60"', b'"markPrice": "66700.00"'))
        await wait_for(lambda: events[-1]["source"] == "ticker", what="a ticker event")
        assert events[-1]["mark_price"] == Decimal("66700.00")
        assert events[-1]["unrealized_pnl"] == Decimal("17.0000")
        assert events[-1]["cs"] == 9532239429

        public.drop("abrupt")
        await wait_for(lambda: len(ws.connections) == 3, timeout_s=5, what="public reconnect")
        assert stream.get_stats()["reconnections"] == 1
    finally:
        await stream.stop()
    assert all(conn.closed for conn in ws.connections)
    signed = [r for r in http.requests if r.path == "/v5/position/list"]
    assert signed and all(r.header("X-BAPI-SIGN") for r in signed)
    assert CANARY not in repr(stream) and CANARY not in json.dumps(stream.get_status())
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("bybit-hybrid")]


async def test_a_burst_of_buffered_frames_is_delivered_while_it_is_read() -> None:
    """Frames already buffered are read back to back without the loop running; the runner
    hands the loop over every half millisecond so the handler gets the burst's first marks
    before its last frame is read (not all at the end), and every frame is still applied."""
    burst = 3000
    seen_at: list[int] = []  # ticker frames applied when each ticker event reached the handler

    async def handler(name: str, payload: dict[str, Any]) -> None:
        if payload["data"]["source"] == "ticker":
            seen_at.append(stream.core.stats.ticker_updates)

    http, ws = MockBackend(handler=_rest), ScriptedWsBackend()
    stream = BybitHybridStream(
        "key", "secret", handler, base_url="http://127.0.0.1:1", ws_backend=ws, http_backend=http
    )
    await stream.start()
    try:
        await stream.wait_ready(5)
        _, public = await _go_live(ws)
        await wait_for(lambda: stream.get_stats()["subscribed_tickers"] == 1, what="subscribed")
        for i in range(burst):
            data = {"symbol": "BTCUSDT", "markPrice": f"{66000 + i}.5"}
            public.feed(
                json.dumps(
                    {"topic": "tickers.BTCUSDT", "type": "delta", "data": data,
                     "cs": 9_600_000_000 + i, "ts": SERVER_MS + i}
                )
            )  # fmt: skip
        await wait_for(lambda: stream.core.stats.ticker_updates >= burst, what="the burst read")
        await wait_for(lambda: bool(seen_at) and seen_at[-1] >= burst, what="the last mark")
    finally:
        await stream.stop()
    assert seen_at[0] < burst  # delivery began while the burst was still being read
    assert stream.core.marks.mark("BTCUSDT") == Decimal(f"{66000 + burst - 1}.5")
