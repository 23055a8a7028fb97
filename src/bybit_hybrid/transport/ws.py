"""WebSocket seams and backends: aiohttp (pull) for real sockets, a scripted one for tests.

The stream's shell talks to sockets only through two seams, so tests can inject a backend
(httpcore-style) and the core never sees a socket:

- `WsBackend`/`WsConnection` (pull): the shell awaits `receive()` for each frame;
- `PushWsBackend`/`PushConnection` (push): the backend calls the shell's `on_frame` from its
  read callback, and the shell only awaits the end of the socket (`ws_picows`, the default).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Literal, Protocol, runtime_checkable

import aiohttp

from bybit_hybrid.transport.errors import TransportError
from bybit_hybrid.transport.http import verified_tls_context
from bybit_hybrid.transport.proxy import Proxy, session_for

# Bybit frames are small; a bound stops a broken peer from exhausting memory.
MAX_FRAME_BYTES = 4 * 1024 * 1024


class ConnectionClosedError(Exception):
    """The socket is closed; `reason` says how (close code, error, EOF)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class WsConnection(Protocol):
    async def send_str(self, data: str) -> None: ...

    async def receive(self) -> str | bytes:
        """The next text/binary frame; raises ConnectionClosedError when the socket ends."""
        ...

    async def close(self) -> None: ...


class WsBackend(Protocol):
    async def connect(self, url: str, *, timeout_s: float) -> WsConnection: ...

    async def aclose(self) -> None: ...


# Receives each data frame's payload, synchronously, inside the backend's read callback.
FrameSink = Callable[[bytes | str], None]


class PushConnection(Protocol):
    async def send_str(self, data: str) -> None: ...

    async def close(self) -> None: ...

    async def wait_closed(self) -> str:
        """Waits until the socket ends; returns how (close code, error, EOF). Never raises."""
        ...


@runtime_checkable
class PushWsBackend(Protocol):
    async def connect_push(
        self, url: str, *, timeout_s: float, on_frame: FrameSink
    ) -> PushConnection: ...

    async def aclose(self) -> None: ...


AnyWsBackend = WsBackend | PushWsBackend
WsBackendName = Literal["picows", "aiohttp"]
WS_BACKENDS: Final[tuple[WsBackendName, ...]] = ("picows", "aiohttp")


def ws_backend_named(name: str, *, proxy: Proxy | None = None) -> AnyWsBackend:
    """A new backend for the `ws_backend` setting's value; ValueError names a wrong one.

    Through a proxy the sockets always use aiohttp, whose proxy paths (HTTP CONNECT, SOCKS5,
    socks5h's remote DNS, forwarded credentials) are the tested ones (docs/connectivity.md)."""
    if name == "picows" and proxy is None:
        from bybit_hybrid.transport.ws_picows import PicowsWsBackend  # noqa: PLC0415  # cycle

        return PicowsWsBackend()
    if name in WS_BACKENDS:
        return AiohttpWsBackend(proxy=proxy)
    raise ValueError(f"ws_backend {name!r} is not one of {', '.join(WS_BACKENDS)}")


_TEXT: Final = aiohttp.WSMsgType.TEXT


class _AiohttpConnection:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws

    async def send_str(self, data: str) -> None:
        try:
            await self._ws.send_str(data)
        except (aiohttp.ClientError, ConnectionError, RuntimeError) as exc:
            raise ConnectionClosedError(f"send failed: {exc}") from None

    async def receive(self) -> str | bytes:
        msg = await self._ws.receive()
        if msg.type is _TEXT:
            return msg.data  # type: ignore[no-any-return]  # a str for TEXT (aiohttp types it Any)
        if msg.type is aiohttp.WSMsgType.BINARY:
            return bytes(msg.data)
        if msg.type is aiohttp.WSMsgType.ERROR:
            raise ConnectionClosedError(f"socket error: {self._ws.exception()}")
        code = self._ws.close_code
        raise ConnectionClosedError(f"closed by peer (code {code})" if code else "closed by peer")

    async def close(self) -> None:
        await self._ws.close()


class AiohttpWsBackend:
    """Real sockets over aiohttp. TLS verification stays on; RFC 6455 pings are answered.

    Every connect passes a verifying TLS context explicitly, so a lent session whose
    connector was built with `ssl=False` cannot turn verification off for `wss://` URLs.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession | None = None,
        *,
        tls_context: ssl.SSLContext | None = None,
        proxy: Proxy | None = None,
    ) -> None:
        self._session = session
        self._owns_session = session is None
        self._proxy = proxy
        self._proxy_kwargs = {} if proxy is None else proxy.request_kwargs()
        self._tls = tls_context if tls_context is not None else verified_tls_context()
        if self._tls.verify_mode != ssl.CERT_REQUIRED or not self._tls.check_hostname:
            raise ValueError("tls_context must verify certificates and host names")

    async def connect(self, url: str, *, timeout_s: float) -> WsConnection:
        if self._session is None:
            self._session = session_for(self._proxy)
        try:
            # asyncio.timeout, not wait_for, which can swallow a racing cancel on 3.11.
            async with asyncio.timeout(timeout_s):
                ws = await self._session.ws_connect(
                    url,
                    autoping=True,  # answer RFC 6455 pings from the server
                    heartbeat=None,  # the core sends Bybit's JSON ping itself
                    max_msg_size=MAX_FRAME_BYTES,
                    ssl=self._tls,
                    headers=None if self._proxy is None else self._proxy.forward_headers(url),
                    **self._proxy_kwargs,
                )
        except TimeoutError:
            raise TransportError(url, f"connect timed out after {timeout_s:.1f}s") from None
        except aiohttp.ClientProxyConnectionError:
            raise TransportError(url, f"connect failed: proxy {self._proxy} refused") from None
        except aiohttp.ClientHttpProxyError as exc:
            raise TransportError(
                url, f"connect failed: proxy {self._proxy} answered http {exc.status}"
            ) from None
        except aiohttp.WSServerHandshakeError as exc:
            raise TransportError(
                url, f"connect refused: http {exc.status}", status=exc.status
            ) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise TransportError(url, f"connect failed: {exc}") from None
        return _AiohttpConnection(ws)

    async def aclose(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None


_Incoming = str | bytes | ConnectionClosedError


@dataclass
class ScriptedConnection:
    """A fake socket for tests: frames to deliver in `incoming`, everything sent in `sent`."""

    url: str
    incoming: asyncio.Queue[_Incoming] = field(default_factory=asyncio.Queue)
    sent: list[str] = field(default_factory=list)
    closed: bool = False

    async def send_str(self, data: str) -> None:
        if self.closed:
            raise ConnectionClosedError("send on closed socket")
        self.sent.append(data)

    async def receive(self) -> str | bytes:
        item = await self.incoming.get()
        if isinstance(item, ConnectionClosedError):
            self.closed = True
            raise item
        return item

    async def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.incoming.put_nowait(ConnectionClosedError("closed by client"))

    def feed(self, frame: str | bytes) -> None:
        self.incoming.put_nowait(frame)

    def drop(self, reason: str = "dropped") -> None:
        self.incoming.put_nowait(ConnectionClosedError(reason))


class ScriptedWsBackend:
    """A WsBackend for tests: each connect makes a ScriptedConnection (or fails on request)."""

    def __init__(self) -> None:
        self.connections: deque[ScriptedConnection] = deque()
        self.refuse_next: int = 0
        self.connect_times: list[float] = []

    async def connect(self, url: str, *, timeout_s: float) -> WsConnection:
        self.connect_times.append(time.monotonic())
        if self.refuse_next > 0:
            self.refuse_next -= 1
            raise TransportError(url, "connect refused: http 503", status=503)
        conn = ScriptedConnection(url)
        self.connections.append(conn)
        return conn

    async def aclose(self) -> None:
        for conn in self.connections:
            await conn.close()
