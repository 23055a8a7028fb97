"""The picows WebSocket backend: frames are pushed from picows's read callback, never queued.

picows (Cython) parses frames inside the protocol's `data_received` and calls the listener
once per frame. `PicowsWsBackend.connect_push` hands each data frame's payload straight to
the caller's `on_frame`, in that callback: no per-frame queue, task switch or `await`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from typing import Final, cast

import picows
from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport

from bybit_hybrid.transport.errors import TransportError
from bybit_hybrid.transport.http import verified_tls_context
from bybit_hybrid.transport.ws import MAX_FRAME_BYTES, ConnectionClosedError, FrameSink

log = logging.getLogger(__name__)
# picows's own messages, under our name. Its INFO line per connection (buffer sizes, mask
# implementation) repeats the stream's own connection log, so only its warnings and errors
# pass unless this logger is lowered explicitly.
_PICOWS_LOG = logging.getLogger(__name__ + ".picows")
_PICOWS_LOG.setLevel(logging.WARNING)

_TEXT: Final = WSMsgType.TEXT
_BINARY: Final = WSMsgType.BINARY
_CONTINUATION: Final = WSMsgType.CONTINUATION
_CLOSE: Final = WSMsgType.CLOSE
# How long `close` waits for the peer to finish the closing handshake before dropping it.
_CLOSE_WAIT_S: Final = 2.0


class _Listener(WSListener):
    """One socket's picows listener: data frames to `on_frame`, the close's reason kept."""

    def __init__(self, on_frame: FrameSink, max_frame_bytes: int) -> None:
        self._on_frame = on_frame
        self._max_frame_bytes = max_frame_bytes
        self._fragments: bytearray | None = None  # a fragmented message being joined
        # Set once the socket is ending; no data frame is delivered after that.
        self.reason: str | None = None

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if self.reason is not None:
            return
        msg_type = frame.msg_type
        if frame.payload_size > self._max_frame_bytes and msg_type is not _CLOSE:
            # picows sends 1009 for such a frame but may still hand it over (2.3.1): the
            # bound is enforced here.
            self._fail(
                transport,
                WSCloseCode.MESSAGE_TOO_BIG,
                f"socket error: frame exceeds {self._max_frame_bytes} bytes (code 1009)",
            )
        elif (msg_type is _TEXT or msg_type is _BINARY) and frame.fin and self._fragments is None:
            # bytes, one copy of a few hundred bytes: cheaper than a memoryview (36 vs 58 ns
            # for a 221-byte ticker, picows 2.3.1), and safe to keep. A memoryview points into
            # picows's read buffer, reused once this returns, and the core may keep the
            # payload it was given (a bad frame's error, a recording).
            try:
                self._on_frame(frame.get_payload_as_bytes())
            except Exception as exc:
                self._sink_failed(transport, exc)
        elif msg_type is _TEXT or msg_type is _BINARY or msg_type is _CONTINUATION:
            self._fragment(transport, frame)
        elif msg_type is _CLOSE:
            self._peer_closed(transport, frame)
        # PING is answered by picows itself (enable_auto_pong); PONG needs nothing.

    def _deliver(self, transport: WSTransport, payload: bytes) -> None:
        try:
            self._on_frame(payload)
        except Exception as exc:
            self._sink_failed(transport, exc)

    def _sink_failed(self, transport: WSTransport, exc: Exception) -> None:
        # The runner's sink catches its own errors; this guards a foreign sink. The socket
        # is closed with a reason, so the stream reconnects instead of going deaf.
        log.exception("websocket frame handler raised")
        self._fail(transport, WSCloseCode.INTERNAL_ERROR, f"frame handler failed: {exc!r}")

    def _fragment(self, transport: WSTransport, frame: WSFrame) -> None:
        """Joins a message sent as a first frame (fin unset) and CONTINUATION frames."""
        starts = frame.msg_type is not _CONTINUATION
        if starts == (self._fragments is not None):
            self._fail(
                transport, WSCloseCode.PROTOCOL_ERROR, "socket error: bad fragmentation (code 1002)"
            )
            return
        parts = self._fragments = bytearray() if starts else self._fragments
        assert parts is not None
        parts += frame.get_payload_as_memoryview()
        if len(parts) > self._max_frame_bytes:
            self._fail(
                transport,
                WSCloseCode.MESSAGE_TOO_BIG,
                f"socket error: message exceeds {self._max_frame_bytes} bytes (code 1009)",
            )
        elif frame.fin:
            self._fragments = None
            self._deliver(transport, bytes(parts))

    def _peer_closed(self, transport: WSTransport, frame: WSFrame) -> None:
        code = frame.get_close_code()
        number = code.value if isinstance(code, WSCloseCode) else int(code)
        text = frame.get_close_reason()
        if self.reason is None:
            detail = f"code {number}" + (f", {text}" if text else "")
            self.reason = f"closed by peer ({detail})" if number else "closed by peer"
        with contextlib.suppress(Exception):
            transport.send_close(code if number else WSCloseCode.OK)
        transport.disconnect()

    def _fail(self, transport: WSTransport, code: WSCloseCode, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
        self._fragments = None
        with contextlib.suppress(Exception):
            transport.send_close(code)
        transport.disconnect()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if self.reason is None:
            self.reason = _lost_reason(transport)


def _lost_reason(transport: WSTransport) -> str:
    """Why a socket ended without a close frame from the peer passing through the listener:
    picows itself closed it (a frame over the bound: 1009) or the TCP connection ended."""
    sent = transport.close_handshake.sent if transport.close_handshake is not None else None
    if sent is not None and sent.code is WSCloseCode.MESSAGE_TOO_BIG:
        return f"socket error: frame exceeds {MAX_FRAME_BYTES} bytes (closed with code 1009)"
    if sent is not None and sent.code is WSCloseCode.PROTOCOL_ERROR:
        return "socket error: protocol error (closed with code 1002)"
    return "closed by peer (connection lost)"


class PicowsConnection:
    """A push-driven socket: frames went to the sink; here sending, closing, and the end."""

    def __init__(self, transport: WSTransport, listener: _Listener) -> None:
        self._transport = transport
        self._listener = listener
        # Always awaited, so an error picows stores for `wait_disconnected` is retrieved.
        self.ended: asyncio.Task[str] = asyncio.create_task(self._until_disconnected())

    async def _until_disconnected(self) -> str:
        try:
            await self._transport.wait_disconnected()
        except Exception as exc:  # picows re-raises what ended the socket; the reason has it
            log.debug("picows socket ended with %r", exc)
        return self._listener.reason or "closed by peer"

    async def send_str(self, data: str) -> None:
        if self._transport.is_disconnected or self._transport.is_close_frame_sent:
            raise ConnectionClosedError("send on closed socket")
        try:
            self._transport.send(_TEXT, data.encode())
        except (ConnectionError, RuntimeError, OSError) as exc:
            raise ConnectionClosedError(f"send failed: {exc}") from None

    async def close(self) -> None:
        """Sends a normal close, waits briefly for the peer's answer, then drops the socket."""
        transport = self._transport
        if self._listener.reason is None:
            self._listener.reason = "closed by client"
        if not transport.is_disconnected:
            with contextlib.suppress(Exception):
                transport.send_close(WSCloseCode.OK)
            transport.disconnect()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_CLOSE_WAIT_S):
                await asyncio.shield(self.ended)

    async def wait_closed(self) -> str:
        """Waits until the socket ends; returns how it ended (close code, error, EOF)."""
        return await asyncio.shield(self.ended)


class PicowsWsBackend:
    """Real sockets over picows, push-driven. TLS verification stays on (one verifying
    context per process); RFC 6455 pings are answered by picows; a frame (or a joined
    message) above `max_frame_bytes` closes the socket with 1009."""

    def __init__(
        self,
        *,
        tls_context: ssl.SSLContext | None = None,
        max_frame_bytes: int = MAX_FRAME_BYTES,
    ) -> None:
        self._tls = tls_context if tls_context is not None else verified_tls_context()
        if self._tls.verify_mode != ssl.CERT_REQUIRED or not self._tls.check_hostname:
            raise ValueError("tls_context must verify certificates and host names")
        self._max_frame_bytes = max_frame_bytes
        self._open: set[PicowsConnection] = set()
        self._dialling: set[asyncio.Future[tuple[WSTransport, WSListener]]] = set()

    async def connect_push(
        self, url: str, *, timeout_s: float, on_frame: FrameSink
    ) -> PicowsConnection:
        def listener() -> _Listener:
            return _Listener(on_frame, self._max_frame_bytes)

        # picows leaves the TCP transport open when `ws_connect` is cancelled mid-handshake
        # (a stream stopped while dialling: "unclosed transport"). So the dial runs as a task
        # of its own that a cancellation or timeout never interrupts: it is left to finish
        # (picows's handshake timeout bounds it) and its socket is then dropped; `aclose`
        # waits for the ones still pending.
        dial = asyncio.ensure_future(
            picows.ws_connect(
                listener,
                url,
                ssl_context=self._tls,
                websocket_handshake_timeout=timeout_s,
                enable_auto_pong=True,  # answer RFC 6455 pings from the server
                enable_auto_ping=False,  # the core sends Bybit's JSON ping itself
                max_frame_size=self._max_frame_bytes,
                max_redirects=0,
                disconnect_on_exception=True,
                logger_name=_PICOWS_LOG,
            )
        )
        transport, made = await self._dialled(dial, url, timeout_s)
        conn = PicowsConnection(transport, made)
        self._open.add(conn)
        conn.ended.add_done_callback(lambda _: self._open.discard(conn))
        return conn

    async def _dialled(
        self, dial: asyncio.Future[tuple[WSTransport, WSListener]], url: str, timeout_s: float
    ) -> tuple[WSTransport, _Listener]:
        """The dial's socket and listener, or a `TransportError` saying why there is none."""
        try:
            # asyncio.timeout bounds TCP connect + TLS + upgrade; picows's own handshake
            # timeout covers only the upgrade.
            async with asyncio.timeout(timeout_s):
                transport, listener = await asyncio.shield(dial)
        except (TimeoutError, asyncio.CancelledError) as exc:
            self._abandon(dial, timeout_s)
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise TransportError(url, f"connect timed out after {timeout_s:.1f}s") from None
        except picows.WSHandshakeError as exc:
            status = None if exc.response is None else int(exc.response.status)
            if status is None:
                raise TransportError(url, f"connect failed: bad handshake: {exc}") from None
            raise TransportError(url, f"connect refused: http {status}", status=status) from None
        except (picows.WSError, picows.WSInvalidURL, OSError, ValueError) as exc:
            raise TransportError(url, f"connect failed: {exc}") from None
        return transport, cast(_Listener, listener)  # the one `listener()` built

    def _abandon(
        self, dial: asyncio.Future[tuple[WSTransport, WSListener]], timeout_s: float
    ) -> None:
        """A dial nobody waits for any more: its socket, if it opens, is dropped at once. One
        still pending after another `timeout_s` is stuck in the TCP connect (the upgrade has
        its own timeout), where a cancel closes the socket: it is cancelled then."""
        self._dialling.add(dial)
        dial.add_done_callback(self._drop_dialled)
        asyncio.get_running_loop().call_later(timeout_s, dial.cancel)

    def _drop_dialled(self, dial: asyncio.Future[tuple[WSTransport, WSListener]]) -> None:
        self._dialling.discard(dial)
        if dial.cancelled() or dial.exception() is not None:  # retrieved: nothing to drop
            return
        transport, _ = dial.result()
        transport.disconnect()

    async def aclose(self) -> None:
        for conn in list(self._open):
            await conn.close()
        if self._dialling:  # dials a stop abandoned: let them end and drop their sockets
            await asyncio.wait(list(self._dialling), timeout=_CLOSE_WAIT_S)
