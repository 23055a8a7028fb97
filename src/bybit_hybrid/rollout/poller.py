"""REST polling: the `RestPoller` shell and `AdaptiveBybitStream`, the REST-only position stream.

`RestPoller` carries out what `protocol.polling.PollPlanner` decides: it sleeps until the next
poll (or until `hurry()`), fetches `/v5/position/list` (every settle coin, every page) and then
`/v5/market/tickers` for the symbols whose marks REST serves, and hands the answers to a
`PollTarget`: a `RestBook` for the REST-only stream, or the hybrid core during a failover.

    stream = AdaptiveBybitStream(api_key, api_secret, event_handler=handler, testnet=True)
    await stream.start()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from typing import Any, Final, Protocol

from bybit_hybrid.protocol.domain import TickerUpdate
from bybit_hybrid.protocol.events import PositionView
from bybit_hybrid.protocol.failure_digest import FailureDigest
from bybit_hybrid.protocol.hybrid import CoreEvent, FetchPositions, Reconciled, RestFailed
from bybit_hybrid.protocol.polling import PollConfig, PollNeeds, PollPlanner
from bybit_hybrid.protocol.restbook import RestBook
from bybit_hybrid.router.fanout import EventHandler
from bybit_hybrid.shell import ShellStream, StreamParams
from bybit_hybrid.transport.errors import AuthError, BybitError, RateLimitedError
from bybit_hybrid.transport.http import HttpBackend
from bybit_hybrid.transport.proxy import Proxy
from bybit_hybrid.transport.ratelimit import POSITION_LIST
from bybit_hybrid.transport.rest import BybitRestClient, PositionPage

log = logging.getLogger(__name__)

# Above this many symbols, one call for all linear tickers is cheaper than one call each.
TICKERS_ONE_BY_ONE_MAX: Final = 3
# A complete confirmation listing can miss new keys; what is left after this many rounds is
# confirmed by the next poll.
CONFIRM_ROUNDS_MAX: Final = 2


class PollTarget(Protocol):
    """Where a poll's answers go, and what the next poll must serve."""

    def needs(self) -> PollNeeds: ...

    def apply_positions(self, page: PositionPage, requested_at: float, now: float) -> None: ...

    def apply_tickers(self, updates: list[TickerUpdate], now: float) -> None: ...

    def confirmations(self) -> list[str | None]:
        """Symbols (None: a complete listing) to fetch at once to confirm keys the last listing
        missed; empty when the target asks for them itself (the hybrid core)."""

    def apply_confirmation(
        self, symbol: str | None, page: PositionPage, requested_at: float, now: float
    ) -> None: ...

    def poll_failed(self, error: BybitError, retry_in_s: float, now: float) -> None:
        """The poll failed (the poller has logged it); the next try is in `retry_in_s`."""

    def polled(self, now: float) -> None: ...


class RestPoller:
    """Runs the poll loop for one target; `clock` must be the target's clock (epoch seconds)."""

    def __init__(
        self,
        rest: BybitRestClient,
        target: PollTarget,
        planner: PollPlanner,
        *,
        clock: Callable[[], float],
        first_poll_delayed: bool = False,
    ) -> None:
        self._rest = rest
        self._target = target
        self.planner = planner
        self._clock = clock
        self._first_delayed = first_poll_delayed
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.last_poll_at: float | None = None
        self.last_error: str | None = None
        self._digest = FailureDigest()
        self.position_rows = 0
        self.ticker_rows = 0

    def start(self) -> None:
        if self._first_delayed:
            # The stream bootstraps itself; the first poll would only repeat it.
            self.planner.delay_first(self._clock(), self._target.needs())
        self._task = asyncio.create_task(self._run(), name="bybit-hybrid-poller")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None

    def hurry(self) -> None:
        """Poll now (as far as the rate-limit gate allows): a scope just switched to REST."""
        self.planner.hurry(self._clock())
        self._wake.set()

    def reschedule(self) -> None:
        """Re-reads the needs: a shorter interval brings the next poll forward."""
        self.planner.reschedule(self._target.needs())
        self._wake.set()

    def status(self, now: float) -> dict[str, Any]:
        needs = self._target.needs()
        stats = self.planner.stats
        return {
            "interval_s": self.planner.interval_s(needs),
            "next_poll_in_s": round(max(0.0, self.planner.next_at - now), 3),
            "last_poll_age_s": None
            if self.last_poll_at is None
            else round(now - self.last_poll_at, 3),
            "mark_symbols": sorted(needs.mark_symbols),
            "polls": stats.polls,
            "failures": stats.failures,
            "rate_limited": stats.rate_limited,
            "limit_waits": stats.limit_waits,
            "last_error": self.last_error,
        }

    # --- the loop ---------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            now = self._clock()
            if self.planner.due(now):
                await self._poll_once()
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.planner.next_at - now):
                    await self._wake.wait()

    async def _poll_once(self) -> None:
        requested_at = self._clock()
        try:
            page = await self._rest.get_positions()
            self.position_rows += len(page.positions)
            self._target.apply_positions(page, requested_at, self._clock())
            await self._confirm()
            # Read after the positions: a position that just opened needs its mark too.
            symbols = self._target.needs().mark_symbols
            if symbols:
                updates = await self._fetch_tickers(symbols)
                self.ticker_rows += len(updates)
                self._target.apply_tickers(updates, self._clock())
        except RateLimitedError as exc:
            reset_s = None if exc.reset_at_ms is None else exc.reset_at_ms / 1000
            retry_at = self.planner.on_rate_limited(self._clock(), reset_s)
            self._failed(exc, retry_at)
        except BybitError as exc:
            retry_at = self.planner.on_failure(self._clock(), self._target.needs())
            self._failed(exc, retry_at)
        except Exception as exc:
            # A bug below us must not end polling, which is the last line of defence.
            log.exception("rest poll raised unexpectedly")
            retry_at = self.planner.on_failure(self._clock(), self._target.needs())
            self._failed(BybitError(f"unexpected {exc!r}"), retry_at)
        else:
            now = self._clock()
            self.last_poll_at = now
            self.last_error = None
            if (line := self._digest.succeeded("rest", self._clock())) is not None:
                log.log(line.level, "%s", line.message)
            self.planner.on_success(now, self._target.needs())
            self._observe_limits(now)
            self._target.polled(now)

    async def _confirm(self) -> None:
        """Fetches at once what the book wants to confirm a key the listing missed, so a real
        close waits one more call instead of a whole poll interval (issue 19 F1)."""
        for _ in range(CONFIRM_ROUNDS_MAX):
            wanted = self._target.confirmations()
            if not wanted:
                return
            for symbol in wanted:
                requested_at = self._clock()
                page = await self._rest.get_positions(symbol=symbol)
                self.position_rows += len(page.positions)
                self._target.apply_confirmation(symbol, page, requested_at, self._clock())

    async def _fetch_tickers(self, symbols: frozenset[str]) -> list[TickerUpdate]:
        if len(symbols) > TICKERS_ONE_BY_ONE_MAX:
            return [u for u in await self._rest.get_tickers() if u.symbol in symbols]
        updates: list[TickerUpdate] = []
        for symbol in sorted(symbols):
            updates.extend(await self._rest.get_tickers(symbol))
        return updates

    def _failed(self, exc: BybitError, retry_at: float) -> None:
        now = self._clock()
        retry_in_s = max(0.0, retry_at - now)
        self.last_error = str(exc)
        line = self._digest.failed(
            "rest", f"poll failed, next try in {retry_in_s:.1f}s: {exc}", now
        )
        if line is not None:
            log.log(line.level, "%s", line.message)
        self._target.poll_failed(exc, retry_in_s, now)

    def _observe_limits(self, now: float) -> None:
        status = self._rest.rate_limits.get(POSITION_LIST)
        if status is None:
            return
        reset_s = None if status.reset_at_ms is None else status.reset_at_ms / 1000
        self.planner.observe_limit(now, status.limit, status.remaining, reset_s)


def rest_failed(exc: BybitError, retry_in_s: float) -> RestFailed:
    """A failed poll as the core's `RestFailed`, so listeners handle it like any REST failure."""
    request = FetchPositions(0, "poll")
    return RestFailed(request, str(exc), retry_in_s, permanent=isinstance(exc, AuthError))


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
            status["positions"] = [self._position_status(v, now) for v in self.positions()]
            status["uptime_s"] = round(now - (self._started_at or now), 3)
        status["stats"] = self.get_stats()
        return status

    # --- internals ---------------------------------------------------------------------------

    def _position_status(self, view: PositionView, now: float) -> dict[str, Any]:
        age = self._book.marks.age_s(view.key.symbol, now)
        return {
            "symbol": view.key.symbol,
            "position_idx": view.key.idx,
            "side": view.side.value if view.side else None,
            "size": str(view.size),
            "mark_price": None if view.mark_price is None else str(view.mark_price),
            "mark_age_s": None if age is None else round(age, 3),
        }

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
