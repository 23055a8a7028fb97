"""One simulated WebSocket connection: state, topics, idle clock and an ordered send queue."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from enum import Enum

from aiohttp import web

from bybit_hybrid.sim.faults import ConnKind
from bybit_hybrid.sim.frames import SEND_STAMP_TEXT

log = logging.getLogger(__name__)


class ConnState(Enum):
    """Lifecycle of a sim connection."""

    OPEN = "open"
    AUTHENTICATED = "authenticated"
    CLOSED = "closed"


class SimConnection:
    """Outgoing frames go through a queue drained by one writer task, so a slow client or an
    injected delay never blocks the tick loop and frame order is kept."""

    def __init__(
        self,
        *,
        kind: ConnKind,
        conn_id: str,
        ws: web.WebSocketResponse,
        request: web.Request,
        max_active_s: float,
        queue_max: int,
        clock_s: Callable[[], float],
        delay_ms: Callable[[], int],
        stamp_send_us: bool = False,
    ) -> None:
        self.kind = kind
        self.conn_id = conn_id
        self.ws = ws
        self.state = ConnState.OPEN
        self.topics: set[str] = set()
        self.max_active_s = max_active_s
        self.silent = False
        self.pings_received = 0
        # The account a private socket authenticated as; its pushes are that account's only.
        self.account: str | None = None
        self._request = request
        self._clock_s = clock_s
        self._delay_ms = delay_ms
        self._stamp_send_us = stamp_send_us
        self.last_activity_s = clock_s()
        self._queue: asyncio.Queue[tuple[float, str]] = asyncio.Queue(maxsize=queue_max)
        self._writer = asyncio.create_task(self._write_loop(), name=f"sim-ws-writer-{conn_id}")

    @property
    def authenticated(self) -> bool:
        return self.state is ConnState.AUTHENTICATED

    def reply(self, text: str) -> None:
        """A direct answer to a request; does not count as pushed data for the idle timer."""
        self._enqueue(text)

    def push(self, text: str) -> None:
        """Topic data; pushed data keeps the connection alive for max_active_time."""
        if self.silent:
            return
        self.last_activity_s = self._clock_s()
        self._enqueue(text)

    def note_ping(self) -> None:
        self.pings_received += 1
        self.last_activity_s = self._clock_s()

    def idle_s(self) -> float:
        return self._clock_s() - self.last_activity_s

    def _enqueue(self, text: str) -> None:
        if self.silent or self.state is ConnState.CLOSED:
            return
        try:
            self._queue.put_nowait((self._clock_s(), text))
        except asyncio.QueueFull:
            # Bybit drops consumers that cannot keep up; so does the sim.
            log.warning("sim: send queue full on %s, cutting the connection", self.conn_id)
            self.abort()

    async def _write_loop(self) -> None:
        while True:
            queued_s, text = await self._queue.get()
            delay_ms = self._delay_ms()
            if delay_ms:
                wait_s = queued_s + delay_ms / 1000 - self._clock_s()
                if wait_s > 0:
                    await asyncio.sleep(wait_s)
            if self._stamp_send_us:
                text = text.replace(SEND_STAMP_TEXT, str(time.time_ns() // 1000), 1)
            try:
                await self.ws.send_str(text)
            except (ConnectionError, RuntimeError):
                return

    def abort(self) -> None:
        """Cuts the TCP connection without a close frame (the client sees 1006)."""
        self.state = ConnState.CLOSED
        transport = self._request.transport
        if transport is not None:
            transport.abort()

    async def close(self, code: int = 1000) -> None:
        """A clean WebSocket close handshake."""
        self.state = ConnState.CLOSED
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self.ws.close(code=code)

    async def shutdown(self) -> None:
        """Stops the writer; called when the handler exits."""
        self.state = ConnState.CLOSED
        self._writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._writer
