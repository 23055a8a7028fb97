"""The asyncio shell around `HybridCore`: sockets in, outboxes out, timers, REST calls.

It makes no business decisions. Every input is handed to the core with the wall-clock time,
then `_pump` carries out whatever the core asked for: frames to send, sockets to close, REST
calls to make, events to deliver, and the next deadline to sleep until.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any, Final

from bybit_hybrid.protocol.domain import Socket, TickerUpdate
from bybit_hybrid.protocol.failure_digest import FailureDigest, LogLine
from bybit_hybrid.protocol.hybrid import (
    PRIVATE,
    CoreEvent,
    FetchPositions,
    FetchTickers,
    HybridCore,
    RestRequest,
)
from bybit_hybrid.transport.endpoints import Endpoints
from bybit_hybrid.transport.errors import AuthError, BybitError, TransportError
from bybit_hybrid.transport.rest import BybitRestClient
from bybit_hybrid.transport.ws import (
    AnyWsBackend,
    ConnectionClosedError,
    PushConnection,
    PushWsBackend,
    WsConnection,
)

log = logging.getLogger(__name__)

# Above this many symbols to seed, one call for all linear tickers is cheaper than one each.
_SEED_ONE_BY_ONE_MAX: Final = 3
# Reading buffered frames back to back, hand the loop over this often (see `_serve`)...
_YIELD_EVERY_S: Final = 0.0005
# ...where a receive that took longer than this is taken to have waited (the loop ran).
_SUSPENDED_S: Final = 0.00005


class StreamRunner:
    """Runs one `HybridCore` against real (or injected) sockets and a REST client."""

    def __init__(
        self,
        core: HybridCore,
        endpoints: Endpoints,
        rest: BybitRestClient,
        ws_backend: AnyWsBackend,
        on_events: Callable[[list[CoreEvent]], None],
        *,
        clock: Callable[[], float] = time.time,
        max_active_time_s: int | None = None,
    ) -> None:
        self.core = core
        self._endpoints = endpoints
        self._rest = rest
        self._ws = ws_backend
        self._on_events = on_events
        self._clock = clock
        # Connect failures: the first logged, repeats summarised, ERROR after a bound.
        self.digest = FailureDigest()
        self._max_active_time_s = max_active_time_s
        self._conns: dict[str, WsConnection | PushConnection] = {}
        self._send_queues: dict[str, asyncio.Queue[str]] = {}
        self._socket_tasks: dict[str, asyncio.Task[None]] = {}
        self._aux_tasks: set[asyncio.Task[None]] = set()
        self._closing: dict[str, str] = {}
        self._wake = asyncio.Event()
        # Set (and replaced) when reconnect times move earlier: waiting sockets re-read them.
        self._rescheduled = asyncio.Event()
        # When the timer loop will wake by itself (None: not sleeping on a deadline yet).
        self._timer_due: float | None = None
        self._timer: asyncio.Task[None] | None = None
        self._stopping = False

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        self._timer = asyncio.create_task(self._timer_loop(), name="bybit-hybrid-timer")
        self._pump()

    async def stop(self) -> None:
        """Cancels every task and closes every socket; safe to call twice."""
        self._stopping = True
        tasks = [*self._socket_tasks.values(), *self._aux_tasks]
        if self._timer is not None:
            tasks.append(self._timer)
        for task in tasks:
            task.cancel()
        for conn in list(self._conns.values()):
            with contextlib.suppress(Exception):
                await conn.close()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._conns.clear()
        self._socket_tasks.clear()
        self._aux_tasks.clear()

    # --- the pump: carry out the core's outputs ------------------------------------------

    def pump(self) -> None:
        """Carries out the core's outputs after an input fed from outside (a failover poll)."""
        self._pump()

    def _pump(self) -> None:
        if self._stopping:
            return
        core = self.core
        for name in core.sockets():
            if name not in self._socket_tasks:
                self._socket_tasks[name] = asyncio.create_task(
                    self._socket_loop(name), name=f"bybit-hybrid-{name}"
                )
        for name in list(self._conns):
            for frame in core.take_outbox(name):
                self._send_queues[name].put_nowait(frame)
            reason = core.close_requested(name)
            if reason is not None and name not in self._closing:
                self._closing[name] = reason
                self._spawn(self._conns[name].close())
        for request in core.take_rest_requests():
            self._spawn(self._run_rest(request))
        events = core.take_events()
        if events:
            self._on_events(events)
        if core.take_schedule_changed():
            self._rescheduled.set()
            self._rescheduled = asyncio.Event()
        # Wake the timer only if the core now has an earlier deadline than the one it sleeps
        # towards; a data frame only pushes deadlines later, so most frames skip the wake-up.
        deadline = core.next_deadline()
        if deadline is not None and (self._timer_due is None or deadline < self._timer_due):
            self._wake.set()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._aux_tasks.add(task)
        task.add_done_callback(self._aux_tasks.discard)

    # --- timers ----------------------------------------------------------------------------

    async def _timer_loop(self) -> None:
        while not self._stopping:
            deadline = self.core.next_deadline()
            timeout_s = None if deadline is None else max(0.0, deadline - self._clock())
            self._timer_due = deadline
            self._wake.clear()
            if timeout_s is None or timeout_s > 0:
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel that
                # races the wake-up, and this loop would then never end.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout_s):
                        await self._wake.wait()
            now = self._clock()
            deadline = self.core.next_deadline()
            if deadline is not None and now >= deadline:
                self.core.tick(now)
                self._pump()

    # --- sockets ------------------------------------------------------------------------

    def _url(self, name: str) -> str:
        if self.core.kind(name) is Socket.PUBLIC:
            return self._endpoints.public_ws_url
        url = self._endpoints.private_ws_url
        if self._max_active_time_s is not None:
            url += f"?max_active_time={self._max_active_time_s}s"
        return url

    async def _socket_loop(self, name: str) -> None:
        try:
            while not self._stopping and not self.core.is_retired(name):
                await self._wait_for_reconnect(name)
                if self.core.is_retired(name):
                    break
                await self._connect_once(name)
        finally:
            self._socket_tasks.pop(name, None)

    async def _wait_for_reconnect(self, name: str) -> None:
        """Until the core lets `name` dial; re-read when the schedule moves (a recovery) and
        after each wait (another socket may have taken the budget's slot meanwhile)."""
        while not self._stopping and not self.core.is_retired(name):
            at = self.core.reconnect_at(name)
            wait_s = 0.0 if at is None else at - self._clock()
            if wait_s <= 0:
                return
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait_s):
                    await self._rescheduled.wait()

    async def _connect_once(self, name: str) -> None:
        core = self.core
        core.start_connect(name, self._clock())
        self._pump()
        timeout_s = core.config.session.connect_timeout_s
        url = self._url(name)
        sink: _Sink | None = None
        conn: WsConnection | PushConnection
        try:
            if isinstance(self._ws, PushWsBackend):
                sink = _Sink(self, name)
                conn = await self._ws.connect_push(url, timeout_s=timeout_s, on_frame=sink)
            else:
                conn = await self._ws.connect(url, timeout_s=timeout_s)
        except TransportError as exc:
            self._log(self.digest.failed(name, f"connect failed: {exc}", self._clock()))
            core.on_close(name, self._clock(), f"connect failed: {exc.reason}")
            self._pump()
            return
        if core.close_requested(name) is not None:  # the connect deadline passed meanwhile
            await conn.close()
            core.on_close(name, self._clock(), core.close_requested(name) or "closed")
            self._pump()
            return
        if sink is None:
            await self._serve(name, conn)  # type: ignore[arg-type]  # pull backends give pull conns
        else:
            await self._serve_push(name, conn, sink)  # type: ignore[arg-type]

    def _opened(self, name: str, conn: WsConnection | PushConnection) -> asyncio.Task[None]:
        """Registers an open socket, starts its writer and tells the core."""
        self._conns[name] = conn
        self._send_queues[name] = asyncio.Queue()
        writer = asyncio.create_task(self._writer(name, conn), name=f"bybit-hybrid-{name}-tx")
        self.core.on_open(name, self._clock())
        self._log(self.digest.succeeded(name, self._clock()))
        self._pump()
        return writer

    async def _unregister(self, name: str, writer: asyncio.Task[None], reason: str) -> str:
        """Forgets an ended socket and stops its writer; returns why it ended."""
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writer
        self._conns.pop(name, None)
        self._send_queues.pop(name, None)
        return self._closing.pop(name, reason)

    def _report_closed(self, name: str, reason: str) -> None:
        if not self._stopping:
            # A drop is worth a trace at WARNING; a shard we retired is not a drop.
            level = logging.INFO if self.core.is_retired(name) else logging.WARNING
            log.log(level, "%s: socket closed: %s", name, reason)
            self.core.on_close(name, self._clock(), reason)
            self._pump()

    async def _serve_push(self, name: str, conn: PushConnection, sink: _Sink) -> None:
        """A push socket: its frames reach the core from the backend's read callback (`_Sink`);
        this task only waits for the socket to end."""
        writer = self._opened(name, conn)
        reason = "closed"
        try:
            sink.go_live()
            reason = await conn.wait_closed()
        finally:
            sink.live = False
            reason = await self._unregister(name, writer, reason)
        self._report_closed(name, reason)

    def fail_socket(self, name: str, reason: str) -> None:
        """Closes socket `name` with `reason` (reported to the core when it has ended)."""
        conn = self._conns.get(name)
        if conn is not None and name not in self._closing:
            self._closing[name] = reason
            self._spawn(conn.close())

    async def _serve(self, name: str, conn: WsConnection) -> None:
        core = self.core
        writer = self._opened(name, conn)
        reason = "closed"
        # A burst of buffered frames is read without the loop running in between, so events
        # would reach the consumers only after the whole burst; yielding every `_YIELD_EVERY_S`
        # of busy reading lets the dispatcher deliver the first marks of a burst early.
        perf = time.perf_counter
        busy_since = perf()
        try:
            while True:
                waited_from = perf()
                payload = await conn.receive()
                received_at = perf()
                if received_at - waited_from > _SUSPENDED_S:
                    busy_since = received_at  # the loop ran while we waited: a new stretch
                if core.on_frame(name, payload, self._clock()):
                    self._pump()
                elif core.pending_events and not self._stopping:  # only events, or none
                    self._on_events(core.take_events())
                if received_at - busy_since > _YIELD_EVERY_S:
                    await asyncio.sleep(0)
                    busy_since = perf()
        except ConnectionClosedError as exc:
            reason = exc.reason
        finally:
            reason = await self._unregister(name, writer, reason)
        self._report_closed(name, reason)

    @staticmethod
    def _log(line: LogLine | None) -> None:
        if line is not None:
            log.log(line.level, "%s", line.message)

    async def _writer(self, name: str, conn: WsConnection | PushConnection) -> None:
        queue = self._send_queues[name]
        while True:
            frame = await queue.get()
            try:
                await conn.send_str(frame)
            except ConnectionClosedError:
                return  # the reader sees the close and reports it

    # --- REST -------------------------------------------------------------------------------

    async def _run_rest(self, request: RestRequest) -> None:
        requested_at = self._clock()
        try:
            if isinstance(request, FetchPositions):
                page = await self._rest.get_positions(symbol=request.symbol)
                self.core.on_positions(
                    request.request_id,
                    page.positions,
                    requested_at=requested_at,
                    response_ts_ms=page.response_time_ms,
                    now=self._clock(),
                )
            else:
                self.core.on_tickers(
                    request.request_id, await self._fetch_tickers(request), self._clock()
                )
        except BybitError as exc:
            self.core.on_rest_failed(
                request.request_id, str(exc), self._clock(), permanent=isinstance(exc, AuthError)
            )
        except Exception as exc:
            # A bug below us must not leave the request in flight forever: log it, retry later.
            log.exception("rest %s raised unexpectedly", type(request).__name__)
            self.core.on_rest_failed(request.request_id, f"unexpected {exc!r}", self._clock())
        self._pump()

    async def _fetch_tickers(self, request: FetchTickers) -> list[TickerUpdate]:
        symbols = request.symbols
        if symbols is None or len(symbols) > _SEED_ONE_BY_ONE_MAX:
            return await self._rest.get_tickers()
        updates: list[TickerUpdate] = []
        for symbol in symbols:
            updates.extend(await self._rest.get_tickers(symbol))
        return updates

    # --- introspection ----------------------------------------------------------------------

    def open_sockets(self) -> list[str]:
        return list(self._conns)

    @property
    def private_name(self) -> str:
        return PRIVATE


class _Sink:
    """The frame callback of one push socket: each payload straight into the core, then the
    core's outputs carried out, synchronously inside the backend's read callback.

    Frames that arrive before the runner has told the core the socket is open (picows may
    parse a frame in the same read as the upgrade's answer) are held and replayed then."""

    __slots__ = ("_early", "_failed", "_name", "_runner", "live")

    def __init__(self, runner: StreamRunner, name: str) -> None:
        self._runner = runner
        self._name = name
        self._early: list[bytes | str] = []
        self._failed = False  # after a failure, frames until the close are dropped
        self.live = False

    def go_live(self) -> None:
        self.live = not self._failed
        early, self._early = self._early, []
        for payload in early:
            self(payload)

    def __call__(self, payload: bytes | str) -> None:
        if not self.live:
            if not self._failed:
                self._early.append(payload)
            return
        runner = self._runner
        try:
            core = runner.core
            if core.on_frame(self._name, payload, runner._clock()):
                runner._pump()
            elif core.pending_events and not runner._stopping:
                # The steady state: only events (HybridCore.on_frame), and often none at all.
                runner._on_events(core.take_events())
        except Exception as exc:
            # A bug below must not kill the read callback silently: close the socket with a
            # reason, so the core sees it end and the back-off reconnects.
            log.exception("%s: frame handling raised", self._name)
            self.live, self._failed = False, True
            runner.fail_socket(self._name, f"frame handling failed: {exc!r}")
