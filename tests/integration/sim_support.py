"""Helpers for simulator integration tests: raw JSON over aiohttp sockets, signed REST, a sim
running on its own thread for clients (pybit) that block."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, Protocol, TypeVar

import aiohttp
from yarl import URL

from bybit_hybrid.sim import SimConfig, SimServer
from bybit_hybrid.wire.signing import Credentials
from tests.support import UNIT_S

T = TypeVar("T")


class RestTarget(Protocol):
    """Where and as whom to send signed REST: a SimServer, or a sim in another process."""

    @property
    def base_url(self) -> str: ...

    @property
    def api_key(self) -> str: ...

    @property
    def api_secret(self) -> str: ...


async def control(session: aiohttp.ClientSession, sim: RestTarget, path: str, body: Any) -> Any:
    """POSTs `body` to a `/sim/` control route; the answer's `result` (asserting HTTP 200)."""
    async with session.post(f"{sim.base_url}{path}", json=body) as resp:
        reply = await resp.json()
    assert resp.status == 200, reply
    return reply["result"]


def now_ms() -> int:
    return time.time_ns() // 1_000_000


async def recv_json(ws: aiohttp.ClientWebSocketResponse, timeout_s: float = 2 * UNIT_S) -> Any:
    """The next text frame, decoded; fails on close or timeout."""
    msg = await ws.receive(timeout=timeout_s)
    assert msg.type is aiohttp.WSMsgType.TEXT, f"expected a text frame, got {msg.type} {msg.data}"
    return json.loads(msg.data)


async def recv_until(
    ws: aiohttp.ClientWebSocketResponse,
    match: Callable[[Any], bool],
    timeout_s: float = 3 * UNIT_S,
) -> Any:
    """Skips frames until one matches."""
    deadline = time.monotonic() + timeout_s
    while True:
        left_s = deadline - time.monotonic()
        assert left_s > 0, "timed out waiting for a matching frame"
        frame = await recv_json(ws, left_s)
        if match(frame):
            return frame


async def send(ws: aiohttp.ClientWebSocketResponse, frame: dict[str, Any]) -> None:
    await ws.send_str(json.dumps(frame))


def auth_frame(
    sim: SimServer, expires_ms: int | None = None, secret: str | None = None
) -> dict[str, Any]:
    expires = now_ms() + 5000 if expires_ms is None else expires_ms
    creds = Credentials(sim.api_key, secret or sim.api_secret)
    return {"op": "auth", "args": [sim.api_key, expires, creds.ws_auth_signature(expires)]}


async def private_ws(
    session: aiohttp.ClientSession, sim: SimServer, topics: list[str] | None = None, query: str = ""
) -> aiohttp.ClientWebSocketResponse:
    """An authenticated private socket, subscribed to `topics` (acks consumed)."""
    ws = await session.ws_connect(sim.private_ws_url + query)
    await send(ws, auth_frame(sim))
    assert (await recv_json(ws))["success"] is True
    if topics:
        await send(ws, {"op": "subscribe", "args": topics, "req_id": "sub"})
        assert (await recv_json(ws))["success"] is True
    return ws


async def public_ws(
    session: aiohttp.ClientSession, sim: SimServer, topics: list[str] | None = None
) -> aiohttp.ClientWebSocketResponse:
    """A public socket subscribed to `topics`, with the ack and the snapshots consumed."""
    ws = await session.ws_connect(sim.public_ws_url)
    if topics:
        await send(ws, {"op": "subscribe", "args": topics, "req_id": "sub"})
        assert (await recv_json(ws))["success"] is True
        for _ in topics:
            assert (await recv_json(ws))["type"] == "snapshot"
    return ws


def signed_headers(
    sim: RestTarget, payload: str, *, ts_ms: int | None = None, recv_window_ms: int = 5000
) -> dict[str, str]:
    ts = now_ms() if ts_ms is None else ts_ms
    creds = Credentials(sim.api_key, sim.api_secret)
    return {
        "X-BAPI-API-KEY": sim.api_key,
        "X-BAPI-TIMESTAMP": str(ts),
        "X-BAPI-RECV-WINDOW": str(recv_window_ms),
        "X-BAPI-SIGN": creds.rest_signature(ts, recv_window_ms, payload),
        "X-BAPI-SIGN-TYPE": "2",
    }


async def signed_get(
    session: aiohttp.ClientSession, sim: RestTarget, path: str, query: str
) -> tuple[aiohttp.ClientResponse, Any]:
    """GET with the query sent byte for byte as signed (no client re-encoding)."""
    url = URL(f"{sim.base_url}{path}?{query}", encoded=True)
    async with session.get(url, headers=signed_headers(sim, query)) as resp:
        return resp, await resp.json()


async def signed_post(
    session: aiohttp.ClientSession, sim: RestTarget, path: str, body: str
) -> tuple[aiohttp.ClientResponse, Any]:
    headers = {**signed_headers(sim, body), "Content-Type": "application/json"}
    async with session.post(f"{sim.base_url}{path}", data=body.encode(), headers=headers) as resp:
        return resp, await resp.json()


class ThreadedSim:
    """A SimServer on its own event loop thread, for tests whose client blocks (pybit)."""

    def __init__(self, server: SimServer, loop: asyncio.AbstractEventLoop) -> None:
        self.server = server
        self._loop = loop

    def call(self, coro: Coroutine[Any, Any, T], timeout_s: float = 5 * UNIT_S) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout_s)


@contextmanager
def threaded_sim(config: SimConfig) -> Iterator[ThreadedSim]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="sim-loop", daemon=True)
    thread.start()
    server = SimServer(config)
    sim = ThreadedSim(server, loop)
    sim.call(server.start())
    try:
        yield sim
    finally:
        sim.call(server.stop())
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5 * UNIT_S)
        loop.close()
