"""Both WebSocket backends against a real local server: frames, pings, close codes, the frame
bound, refused and hanging upgrades, TLS settings, and a failing frame sink (picows)."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web

from bybit_hybrid import BybitHybridStream
from bybit_hybrid.protocol.session import StateChanged
from bybit_hybrid.sim import SimServer
from bybit_hybrid.transport.errors import TransportError
from bybit_hybrid.transport.http import verified_tls_context
from bybit_hybrid.transport.proxy import Proxy
from bybit_hybrid.transport.ws import (
    MAX_FRAME_BYTES,
    WS_BACKENDS,
    AiohttpWsBackend,
    ConnectionClosedError,
    PushWsBackend,
    WsBackend,
    ws_backend_named,
)
from bybit_hybrid.transport.ws_picows import PicowsWsBackend
from tests.integration.stream_harness import BACKOFF, start_stream
from tests.support import UNIT_S, wait_for

Script = Callable[[web.WebSocketResponse], Awaitable[None]]


@dataclass
class Server:
    """One aiohttp WebSocket endpoint running `script` per connection; what it saw."""

    script: Script
    url: str = ""
    pongs: int = 0
    received: list[str] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.path == "/refuse":
            return web.Response(status=503)
        ws = web.WebSocketResponse(autoping=False)
        await ws.prepare(request)
        await self.script(ws)
        return ws


@contextlib.asynccontextmanager
async def serving(script: Script) -> AsyncIterator[Server]:
    server = Server(script)
    app = web.Application()
    app.router.add_get("/{tail:.*}", server.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    server.url = f"ws://127.0.0.1:{port}"
    try:
        yield server
    finally:
        await runner.cleanup()


@dataclass
class Client:
    """A socket of either backend: frames as text, and how it ended."""

    frames: list[str] = field(default_factory=list)
    ended: str | None = None
    send: Callable[[str], Awaitable[None]] | None = None
    close: Callable[[], Awaitable[None]] | None = None
    task: asyncio.Task[None] | None = None


async def connect(backend: WsBackend | PushWsBackend, url: str) -> Client:
    client = Client()

    def sink(payload: bytes | str) -> None:
        client.frames.append(payload.decode() if isinstance(payload, bytes) else payload)

    if isinstance(backend, PushWsBackend):
        push = await backend.connect_push(url, timeout_s=2 * UNIT_S, on_frame=sink)

        async def ended() -> None:
            client.ended = await push.wait_closed()

        client.send, client.close = push.send_str, push.close
    else:
        pull = await backend.connect(url, timeout_s=2 * UNIT_S)

        async def ended() -> None:
            try:
                while True:
                    sink(await pull.receive())
            except ConnectionClosedError as exc:
                client.ended = exc.reason

        client.send, client.close = pull.send_str, pull.close
    client.task = asyncio.create_task(ended())
    return client


@pytest.fixture(params=WS_BACKENDS)
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[WsBackend | PushWsBackend]:
    made = ws_backend_named(request.param)
    try:
        yield made
    finally:
        await made.aclose()


async def test_frames_arrive_in_order_and_sends_reach_the_server(
    backend: WsBackend | PushWsBackend,
) -> None:
    async def script(ws: web.WebSocketResponse) -> None:
        for i in range(50):
            await ws.send_str(f'{{"n":{i}}}')
        await ws.send_bytes(b'{"binary":true}')
        message = await ws.receive()
        server.received.append(message.data)
        await ws.send_str("echo " + message.data)
        await ws.receive()  # until the client closes

    async with serving(script) as server:
        client = await connect(backend, server.url + "/ws")
        assert client.send is not None and client.close is not None
        await client.send('{"op":"ping"}')
        await wait_for(lambda: len(client.frames) == 52, 2 * UNIT_S, "all frames")
        assert client.frames == [
            *(f'{{"n":{i}}}' for i in range(50)),
            '{"binary":true}',
            'echo {"op":"ping"}',
        ]
        assert server.received == ['{"op":"ping"}']
        await client.close()
        await wait_for(lambda: client.ended is not None, 2 * UNIT_S, "socket ended")


async def test_rfc6455_pings_are_answered(backend: WsBackend | PushWsBackend) -> None:
    async def script(ws: web.WebSocketResponse) -> None:
        for _ in range(3):
            await ws.ping(b"are you there")
            message = await ws.receive()
            if message.type is aiohttp.WSMsgType.PONG and message.data == b"are you there":
                server.pongs += 1
        await ws.send_str("done")
        await ws.receive()

    async with serving(script) as server:
        client = await connect(backend, server.url + "/ws")
        await wait_for(lambda: client.frames == ["done"], 2 * UNIT_S, "pings answered")
        assert server.pongs == 3
        assert client.close is not None
        await client.close()


async def test_the_peers_close_code_is_reported(backend: WsBackend | PushWsBackend) -> None:
    async def script(ws: web.WebSocketResponse) -> None:
        await ws.send_str("last words")
        await ws.close(code=4001, message=b"going away for a while")

    async with serving(script) as server:
        client = await connect(backend, server.url + "/ws")
        await wait_for(lambda: client.ended is not None, 2 * UNIT_S, "socket ended")
        assert client.frames == ["last words"]
        assert client.ended is not None and "4001" in client.ended


async def test_a_frame_above_the_bound_ends_the_socket(backend: WsBackend | PushWsBackend) -> None:
    async def script(ws: web.WebSocketResponse) -> None:
        await ws.send_str("small")
        await ws.send_str("x" * (MAX_FRAME_BYTES + 1))
        with contextlib.suppress(Exception):
            await ws.receive()

    async with serving(script) as server:
        client = await connect(backend, server.url + "/ws")
        await wait_for(lambda: client.ended is not None, 4 * UNIT_S, "socket ended")
        assert client.frames == ["small"]  # the big one is never delivered
        assert client.ended is not None and "error" in client.ended


async def test_a_refused_upgrade_names_the_http_status(backend: WsBackend | PushWsBackend) -> None:
    async def script(ws: web.WebSocketResponse) -> None:
        raise AssertionError("never upgraded")

    async with serving(script) as server:
        with pytest.raises(TransportError, match="http 503") as caught:
            await connect(backend, server.url + "/refuse")
        assert caught.value.status == 503


async def test_a_server_that_never_answers_times_the_connect_out(
    backend: WsBackend | PushWsBackend,
) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # reads the upgrade request, never answers it
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        connector = (
            backend.connect_push(
                f"ws://127.0.0.1:{port}/ws", timeout_s=0.3 * UNIT_S, on_frame=lambda _: None
            )
            if isinstance(backend, PushWsBackend)
            else backend.connect(f"ws://127.0.0.1:{port}/ws", timeout_s=0.3 * UNIT_S)
        )
        with pytest.raises(TransportError, match="timed out"):
            await connector
    finally:
        server.close()
        await server.wait_closed()


async def test_nothing_listening_is_a_transport_error(backend: WsBackend | PushWsBackend) -> None:
    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    with pytest.raises(TransportError, match="connect failed"):
        await connect(backend, f"ws://127.0.0.1:{port}/ws")


def test_picows_verifies_tls_with_the_process_wide_context() -> None:
    assert PicowsWsBackend()._tls is verified_tls_context()
    lax = ssl.create_default_context()
    lax.check_hostname = False
    lax.verify_mode = ssl.CERT_NONE
    with pytest.raises(ValueError, match="must verify"):
        PicowsWsBackend(tls_context=lax)


async def test_a_failing_sink_closes_the_picows_socket_with_a_reason() -> None:
    async def script(ws: web.WebSocketResponse) -> None:
        await ws.send_str("boom")
        with contextlib.suppress(Exception):
            await ws.receive()

    def sink(payload: bytes | str) -> None:
        raise RuntimeError("bug below")

    backend = PicowsWsBackend()
    async with serving(script) as server:
        conn = await backend.connect_push(server.url + "/ws", timeout_s=2 * UNIT_S, on_frame=sink)
        async with asyncio.timeout(2 * UNIT_S):
            reason = await conn.wait_closed()
        assert "frame handler failed" in reason and "bug below" in reason
    await backend.aclose()


def test_an_unknown_backend_name_is_refused() -> None:
    with pytest.raises(ValueError, match="'websockets' is not one of picows, aiohttp"):
        ws_backend_named("websockets")


async def test_a_frame_the_core_chokes_on_closes_the_socket_and_the_stream_recovers(
    sim: SimServer,
) -> None:
    """picows (push): an exception inside the frame callback is not lost in picows: the runner
    closes that socket with a reason, the core sees it end, and the back-off reconnects."""
    h = await start_stream(sim, ws_backend="picows")
    try:
        core = h.stream.core
        real = core.on_frame
        armed = [True]

        def choking(name: str, payload: bytes | str, now: float) -> bool:
            if armed[0] and name.startswith("public"):
                armed[0] = False
                raise RuntimeError("core bug")
            return real(name, payload, now)

        core.on_frame = choking  # type: ignore[method-assign]
        await wait_for(lambda: not armed[0], 3 * UNIT_S, "a public frame arrived")
        await wait_for(
            lambda: any(
                isinstance(e, StateChanged) and "frame handling failed" in e.reason
                for _, e in h.core_events
            ),
            3 * UNIT_S,
            "the socket closed with the reason",
        )
        await h.wait_live(BACKOFF.max_s + 2 * UNIT_S)
        await h.prove_marks_flow(["BTCUSDT"])
    finally:
        await h.close()


def test_through_a_proxy_the_sockets_use_aiohttp() -> None:
    """picows takes none of the tested proxy paths, so a proxy selects aiohttp for the sockets
    (with the proxy), and the direct default stays picows."""
    proxy = Proxy.from_url("socks5h://127.0.0.1:1080")
    assert isinstance(ws_backend_named("picows"), PicowsWsBackend)
    through = ws_backend_named("picows", proxy=proxy)
    assert isinstance(through, AiohttpWsBackend) and through._proxy is proxy
    stream = BybitHybridStream("key", "secret", base_url="http://127.0.0.1:9", proxy=proxy)
    assert isinstance(stream._new_ws_backend("picows"), AiohttpWsBackend)
    direct = BybitHybridStream("key", "secret", base_url="http://127.0.0.1:9")
    assert isinstance(direct._new_ws_backend("picows"), PicowsWsBackend)
