"""`BybitHybridStream`: the seed-compatible facade over the hybrid core and its asyncio shell.

    stream = BybitHybridStream(api_key, api_secret, event_handler=handler, testnet=True)
    await stream.start()
    ...
    await stream.stop()

`event_handler` is awaited as `handler("position_update", {"exchange": "bybit", "data": {...}})`
with the DESIGN §4 data dict. Opens, changes and closes are delivered in order and never
dropped; mark updates are conflated per position when the handler is slower than the feed.
"""

from __future__ import annotations

import dataclasses
import logging
import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bybit_hybrid.protocol.domain import Socket
from bybit_hybrid.protocol.events import MarkUpdated, PositionEvent, PositionView
from bybit_hybrid.protocol.failure_digest import FailureDigest, LogLine
from bybit_hybrid.protocol.hybrid import (
    BadFrame,
    CoreEvent,
    HybridConfig,
    HybridCore,
    Reconciled,
    RestFailed,
)
from bybit_hybrid.protocol.session import AuthFailed, SessionState, SocketDead, StateChanged
from bybit_hybrid.protocol.subscriptions import SubscriptionFailed
from bybit_hybrid.router.fanout import EXCHANGE, POSITION_UPDATE, CoreListener, EventHandler
from bybit_hybrid.shell import ShellStream, StreamParams
from bybit_hybrid.transport.http import HttpBackend
from bybit_hybrid.transport.proxy import Proxy
from bybit_hybrid.transport.recording import Recorder, RecordingCore
from bybit_hybrid.transport.runner import StreamRunner
from bybit_hybrid.transport.ws import WS_BACKENDS, AnyWsBackend, WsBackendName, ws_backend_named

if TYPE_CHECKING:
    from bybit_hybrid.bus.settings import BusSettings
    from bybit_hybrid.bus.worker import BusWorker

log = logging.getLogger(__name__)

# Bybit's accepted range for the private stream's `max_active_time` (BYBIT_V5.md §1.2).
MAX_ACTIVE_TIME_RANGE_S = (30, 600)


class BybitHybridStream(ShellStream):
    """Live Bybit V5 positions from the private + public WebSockets, bootstrapped from REST."""

    _runner: StreamRunner | None
    _owned_ws: AnyWsBackend | None

    def __init__(
        self,
        api_key: str,
        api_secret: str,
        event_handler: EventHandler | None = None,
        testnet: bool = False,
        *,
        demo: bool = False,
        base_url: str | None = None,
        allow_insecure: bool = False,
        region: str | None = None,
        proxy: Proxy | None = None,
        config: HybridConfig | None = None,
        ws_backend: AnyWsBackend | WsBackendName | None = None,
        http_backend: HttpBackend | None = None,
        max_active_time_s: int | None = None,
        rng: random.Random | None = None,
        recorder: Recorder | None = None,
        bus_url: BusSettings | str | None = None,
        bus_account: str | None = None,
    ) -> None:
        params = StreamParams.of(
            api_key,
            api_secret,
            testnet,
            demo=demo,
            base_url=base_url,
            allow_insecure=allow_insecure,
            region=region,
            proxy=proxy,
            http_backend=http_backend,
            rng=rng,
        )
        super().__init__(params, event_handler)
        self._recorder = _tapped(recorder, params)
        self._own_parts(config, ws_backend, max_active_time_s)
        # With `bus_url`: an account worker of the scale-out bus (docs/bus.md).
        self.bus = None if bus_url is None else _bus_worker(self, bus_url, bus_account)

    def _own_parts(
        self,
        config: HybridConfig | None,
        ws_backend: AnyWsBackend | WsBackendName | None,
        max_active_time_s: int | None,
    ) -> None:
        self._config = _with_max_active_time(config or HybridConfig(), max_active_time_s)
        self._ws_backend = _checked_ws_backend(ws_backend)
        self._max_active_time_s = max_active_time_s
        self._core: HybridCore | None = None
        self._forget_parts()
        self._rest_digest = FailureDigest()  # REST failures: first, summaries, ERROR later

    def __repr__(self) -> str:
        creds = self._credentials
        via = "" if self.proxy is None else f", proxy='{self.proxy}'"
        return f"BybitHybridStream(endpoints={self.endpoints.name!r}, credentials={creds!r}{via})"

    # --- lifecycle (`shell.ShellStream` runs start/stop/wait_ready) ----------------------------

    def _prepare(self) -> None:
        self._core = self._new_core()
        ws_backend = self._ws_backend
        if isinstance(ws_backend, str):
            # A name makes a backend per start, owned and closed by the stream.
            ws_backend = self._owned_ws = self._new_ws_backend(ws_backend)
        self._runner = StreamRunner(
            self._core,
            self.endpoints,
            self.rest,
            ws_backend,
            self._on_core_events,
            clock=self._anchor(),
            max_active_time_s=self._max_active_time_s,
        )

    async def _start_parts(self) -> None:
        assert self._runner is not None
        await self._runner.start()
        if self.bus is not None:
            self.bus.start()

    async def _stop_parts(self) -> None:
        if self.bus is not None:
            await self.bus.stop()
        if self._runner is not None:
            await self._runner.stop()

    async def _close_parts(self) -> None:
        if self._owned_ws is not None:
            await self._owned_ws.aclose()
        self._forget_parts()

    def _forget_parts(self) -> None:
        """No runner and no owned socket backend: before the first start and after a stop (the
        core stays, so `positions()` still shows the last book)."""
        self._runner = None
        self._owned_ws = None

    def apply(self, feed: Callable[[HybridCore, float], None]) -> None:
        """Hands the core an input from outside (a failover poll's answer) with the stream's
        clock, then delivers whatever it caused, as for the stream's own inputs."""
        if self._runner is None:
            raise RuntimeError("stream is not started")
        feed(self.core, self._clock())
        self._runner.pump()

    # --- queries -----------------------------------------------------------------------------

    @property
    def core(self) -> HybridCore:
        if self._core is None:
            raise RuntimeError("stream is not started")
        return self._core

    def positions(self) -> list[PositionView]:
        return [] if self._core is None else self._core.book.views()

    def get_stats(self) -> dict[str, Any]:
        """The seed's counters, plus a few more."""
        core = self._core
        if core is None:
            return {"running": False}
        s = core.stats
        return {
            "position_updates": s.position_updates,
            "ticker_updates": s.ticker_updates,
            "combined_events": s.combined_events,
            "subscriptions": s.subscriptions,
            "unsubscriptions": s.unsubscriptions,
            "reconnections": s.reconnections,
            "connected_private": core.is_connected(Socket.PRIVATE),
            "connected_public": core.is_connected(Socket.PUBLIC),
            "active_positions": len(core.book.open_keys()),
            "subscribed_tickers": core.subscribed_tickers(),
            "cached_prices": len(core.marks),
            "bad_frames": sum(s.bad_frames.values()),
            "ignored_frames": s.ignored_frames,
            "rest_failures": s.rest_failures,
            **core.book.stats.missing_rows(),
            **self._fanout.stats(),
            **({} if self.bus is None else self.bus.stats()),
            "running": self._runner is not None,
        }

    def get_status(self) -> dict[str, Any]:
        """A JSON-ready picture: endpoints, sockets, subscriptions, positions with mark ages."""
        status: dict[str, Any] = {
            "mode": "hybrid",
            "endpoints": self.endpoints.name,
            "running": self._runner is not None,
            "ready": self._ready.is_set(),
        }
        if self._core is not None:
            now = self._clock()
            status.update(self._core.status(now))
            status["uptime_s"] = round(now - (self._started_at or now), 3)
        status["stats"] = self.get_stats()
        if self.bus is not None:
            status["bus"] = self.bus.status()
        return status

    # --- internals ---------------------------------------------------------------------------

    def _new_core(self) -> HybridCore:
        if self.bus is not None:
            return self.bus.new_core(self._credentials, self._config, self._rng)
        if self._recorder is None:
            return HybridCore(self._credentials, self._config, self._rng)
        # A recorded core draws from a generator whose seed goes into the recording.
        seed = (self._rng or random.Random()).getrandbits(63)
        return RecordingCore(self._recorder, self._credentials, self._config, seed)

    def _new_ws_backend(self, name: str) -> AnyWsBackend:
        if name == "picows" and self.proxy is not None:
            log.info(
                "proxy %s: the sockets use the aiohttp backend (picows is used without a proxy)",
                self.proxy,
            )
        return ws_backend_named(name, proxy=self.proxy)

    def _on_core_events(self, events: list[CoreEvent]) -> None:
        for event in events:
            # A mark first: most events are, and a class check is cheaper than the union's.
            if event.__class__ is not MarkUpdated and not isinstance(event, PositionEvent):
                self._log_event(event)
                self._ready.observe(event)
        self._fanout.emit(events)

    def _log_event(self, event: CoreEvent) -> None:
        if isinstance(event, RestFailed | Reconciled):
            self._log_rest(event)
        elif isinstance(event, StateChanged):
            # Each retry of a failing connect is two moves; the runner summarises those.
            dialing = {event.old, event.new} == {SessionState.DISCONNECTED, SessionState.CONNECTING}
            log.log(
                logging.DEBUG if dialing else logging.INFO,
                "%s: %s -> %s (%s)",
                event.connection,
                event.old.value,
                event.new.value,
                event.reason,
            )
        else:
            _log_socket_trouble(event)

    def _log_rest(self, event: RestFailed | Reconciled) -> None:
        if isinstance(event, RestFailed):
            reason = (
                f"rest {type(event.request).__name__} failed, retry in "
                f"{event.retry_in_s:.1f}s: {event.error}"
            )
            _log_line_of(self._rest_digest.failed("rest", reason, self._clock()))
            return
        _log_line_of(self._rest_digest.succeeded("rest", self._clock()))
        # A failover poll reconciles every few seconds: only bootstraps and reconnects
        # are worth an info line.
        log.log(
            logging.DEBUG if event.reason == "poll" else logging.INFO,
            "reconciled from rest (%s): %d open, %d events",
            event.reason,
            event.positions,
            event.events,
        )


def _log_socket_trouble(event: CoreEvent) -> None:
    """A warning for a socket's auth rejection, death, failed subscribe or bad frame."""
    if isinstance(event, AuthFailed):
        # A warning: the socket retries with back-off; an application that treats this as
        # fatal (the `stream` command does) reports it once itself.
        log.warning(
            "%s: auth rejected by Bybit (retrying with back-off): %s",
            event.connection,
            event.ret_msg,
        )
    elif isinstance(event, SocketDead):
        log.warning("%s: socket declared dead: %s", event.connection, event.reason)
    elif isinstance(event, SubscriptionFailed):
        log.warning(
            "%s: subscribe %s failed: %s%s",
            event.connection,
            event.topic,
            event.reason,
            " (giving up)" if event.gave_up else "",
        )
    elif isinstance(event, BadFrame):
        log.warning("%s: bad frame ignored: %s", event.connection, event.error)


def _bus_worker(
    stream: BybitHybridStream, bus_url: BusSettings | str, account: str | None
) -> BusWorker:
    """The bus worker a stream composes; nats-py is imported only here, for a bus worker."""
    if stream._recorder is not None:
        raise ValueError("recording is not supported for a bus worker (record without a bus)")
    if stream._config.stream_symbol is not None:
        raise ValueError("a bus worker streams every symbol (no cutover share)")
    from bybit_hybrid.bus.worker import BusWorker  # noqa: PLC0415

    return BusWorker(stream, bus_url, account, stream._fanout.notify)


def _log_line_of(line: LogLine | None) -> None:
    if line is not None:
        log.log(line.level, "%s", line.message)


def _with_max_active_time(config: HybridConfig, seconds: int | None) -> HybridConfig:
    """Checks the private URL's `max_active_time` (30..600 s, BYBIT_V5.md §1.2) and records it
    in the session config, whose own validation then insists that the pings beat it."""
    if seconds is None:
        return config
    if not MAX_ACTIVE_TIME_RANGE_S[0] <= seconds <= MAX_ACTIVE_TIME_RANGE_S[1]:
        raise ValueError(f"max_active_time_s must be within 30..600, got {seconds}")
    session = dataclasses.replace(config.session, max_active_time_s=float(seconds))
    return dataclasses.replace(config, session=session)


def _checked_ws_backend(
    ws_backend: AnyWsBackend | WsBackendName | None,
) -> AnyWsBackend | WsBackendName:
    """A backend object is lent (the caller closes it); a name (default: picows) makes one per
    start, owned and closed by the stream; an unknown name is refused here."""
    backend = "picows" if ws_backend is None else ws_backend
    if isinstance(backend, str) and backend not in WS_BACKENDS:
        raise ValueError(f"ws_backend {backend!r} is not one of {', '.join(WS_BACKENDS)}")
    return backend


def _tapped(recorder: Recorder | None, params: StreamParams) -> Recorder | None:
    """The optional tap (every core input goes to the recording), told the keys to redact."""
    if recorder is not None:
        recorder.add_secret(params.api_key)
        recorder.add_secret(params.api_secret)
    return recorder


__all__ = ["EXCHANGE", "POSITION_UPDATE", "BybitHybridStream", "CoreListener", "EventHandler"]
