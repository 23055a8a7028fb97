"""`AdaptiveBybitStream`, the REST-only position stream: a `RestBook` fed by the REST poller.

The poller itself (`transport.poller.RestPoller`, re-exported here) is a transport shell; it
serves this stream's book, or the hybrid core during a failover (`rollout.modes`).

    stream = AdaptiveBybitStream(api_key, api_secret, event_handler=handler, testnet=True)
    await stream.start()
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import Any

from bybit_hybrid.protocol.domain import TickerUpdate
from bybit_hybrid.protocol.events import PositionView, status_row
from bybit_hybrid.protocol.hybrid import CoreEvent, Reconciled
from bybit_hybrid.protocol.polling import PollConfig, PollNeeds, PollPlanner
from bybit_hybrid.protocol.restbook import RestBook
from bybit_hybrid.router.fanout import EventHandler
from bybit_hybrid.shell import ShellStream, StreamParams
from bybit_hybrid.transport.errors import BybitError
from bybit_hybrid.transport.http import HttpBackend
from bybit_hybrid.transport.poller import PollTarget, RestPoller, rest_failed
from bybit_hybrid.transport.proxy import Proxy
from bybit_hybrid.transport.rest import PositionPage

log = logging.getLogger(__name__)

# Re-exported: their home is `transport.poller`.
__all__ = ["AdaptiveBybitStream", "PollTarget", "RestPoller", "rest_failed"]


class AdaptiveBybitStream(ShellStream):
    """Positions and marks from REST polling alone, with the hybrid stream's events and API."""

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
        poll: PollConfig | None = None,
        http_backend: HttpBackend | None = None,
        rng: random.Random | None = None,
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
        self._poll_config = poll or PollConfig()
        self._book = RestBook()
        self._poller: RestPoller | None = None
        self._poll_listeners: list[Callable[[float], None]] = []

    def __repr__(self) -> str:
        creds = self._credentials
        return f"AdaptiveBybitStream(endpoints={self.endpoints.name!r}, credentials={creds!r})"

    # --- lifecycle (`shell.ShellStream` runs start/stop/wait_ready) ----------------------------

    def _prepare(self) -> None:
        self._book = RestBook()
        planner = PollPlanner(self._poll_config, self._rng)
        self._poller = RestPoller(self.rest, _BookTarget(self), planner, clock=self._clock)

    async def _start_parts(self) -> None:
        """Starts polling; the first poll is sent at once, and `wait_ready` waits for it."""
        assert self._poller is not None
        self._poller.start()

    async def _stop_parts(self) -> None:
        if self._poller is not None:
            await self._poller.stop()
        self._poller = None

    def add_poll_listener(self, listener: Callable[[float], None]) -> None:
        """Called with `now` after each successful poll (the parallel comparison samples then)."""
        self._poll_listeners.append(listener)

    # --- queries -----------------------------------------------------------------------------

    @property
    def book(self) -> RestBook:
        return self._book

    @property
    def poller(self) -> RestPoller:
        if self._poller is None:
            raise RuntimeError("stream is not started")
        return self._poller

    def positions(self) -> list[PositionView]:
        return self._book.book.views()

    def get_stats(self) -> dict[str, Any]:
        """The seed's counters (sockets stay zero: this stream opens none), plus polling."""
        book = self._book
        poller = self._poller
        planner = poller.planner.stats if poller is not None else None
        return {
            "mode": "rest",
            "position_updates": poller.position_rows if poller else 0,
            "ticker_updates": poller.ticker_rows if poller else 0,
            "combined_events": book.stats.events,
            "subscriptions": 0,
            "unsubscriptions": 0,
            "reconnections": 0,
            "connected_private": False,
            "connected_public": False,
            "active_positions": len(book.book),
            "subscribed_tickers": 0,
            "cached_prices": len(book.marks),
            "polls": planner.polls if planner else 0,
            "poll_failures": planner.failures if planner else 0,
            "rate_limited": planner.rate_limited if planner else 0,
            "rest_failures": planner.failures + planner.rate_limited if planner else 0,
            **book.book.stats.missing_rows(),
            **self._fanout.stats(),
            "running": poller is not None,
        }

    def get_status(self) -> dict[str, Any]:
        now = self._clock()
        status: dict[str, Any] = {
            "mode": "rest",
            "driver": "rest",  # as in every mode's status (docs/rollout.md)
            "endpoints": self.endpoints.name,
            "running": self._poller is not None,
            "ready": self._ready.is_set(),
        }
        if self._poller is not None:
            status["poller"] = self._poller.status(now)
            status["positions"] = [
                status_row(v, self._book.marks.age_s(v.key.symbol, now)) for v in self.positions()
            ]
            status["uptime_s"] = round(now - (self._started_at or now), 3)
        status["stats"] = self.get_stats()
        return status

    # --- internals ---------------------------------------------------------------------------

    def _applied_positions(self, page: PositionPage, requested_at: float, now: float) -> None:
        events: list[CoreEvent] = list(
            self._book.on_positions(
                page.positions,
                now,
                requested_at=requested_at,
                response_ts_ms=page.response_time_ms,
            )
        )
        if not self._ready.is_set():
            opened = sum(1 for s in page.positions if s.is_open)
            events.append(Reconciled("bootstrap", opened, len(events)))
            self._ready.set()
        self._fanout.emit(events)

    def _confirmed(
        self, symbol: str | None, page: PositionPage, requested_at: float, now: float
    ) -> None:
        if symbol is None:
            self._applied_positions(page, requested_at, now)
            return
        events = self._book.on_confirm(
            symbol,
            page.positions,
            now,
            requested_at=requested_at,
            response_ts_ms=page.response_time_ms,
        )
        self._fanout.emit(list(events))

    def _applied_tickers(self, updates: list[TickerUpdate], now: float) -> None:
        self._fanout.emit(self._book.on_tickers(updates, now))

    def _polled(self, now: float) -> None:
        for listener in self._poll_listeners:
            try:
                listener(now)
            except Exception:
                log.exception("poll listener failed")

    def _poll_failed(self, error: BybitError, retry_in_s: float, now: float) -> None:
        failed = rest_failed(error, retry_in_s)
        self._ready.observe(failed)
        self._fanout.notify(failed)


class _BookTarget:
    """The REST-only stream as a poll target: REST drives every position and mark."""

    def __init__(self, stream: AdaptiveBybitStream) -> None:
        self._stream = stream

    def needs(self) -> PollNeeds:
        book = self._stream.book
        held = frozenset(book.held_symbols())
        return PollNeeds(open_positions=len(book.book), rest_drives=True, mark_symbols=held)

    def apply_positions(self, page: PositionPage, requested_at: float, now: float) -> None:
        self._stream._applied_positions(page, requested_at, now)

    def apply_tickers(self, updates: list[TickerUpdate], now: float) -> None:
        self._stream._applied_tickers(updates, now)

    def confirmations(self) -> list[str | None]:
        return self._stream.book.take_confirmations()

    def apply_confirmation(
        self, symbol: str | None, page: PositionPage, requested_at: float, now: float
    ) -> None:
        self._stream._confirmed(symbol, page, requested_at, now)

    def poll_failed(self, error: BybitError, retry_in_s: float, now: float) -> None:
        self._stream._poll_failed(error, retry_in_s, now)

    def polled(self, now: float) -> None:
        self._stream._polled(now)
