"""The REST poller: the transport shell that carries out what `protocol.polling` decides.

`RestPoller` sleeps until the next poll (or until `hurry()`), fetches `/v5/position/list`
(every settle coin, every page) and then `/v5/market/tickers` for the symbols whose marks REST
serves, and hands the answers to a `PollTarget`: a `RestBook` for the REST-only stream
(`rollout.poller`), or the hybrid core during a failover (`rollout.modes`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any, Final, Protocol

from bybit_hybrid.protocol.domain import TickerUpdate
from bybit_hybrid.protocol.failure_digest import FailureDigest
from bybit_hybrid.protocol.hybrid import FetchPositions, RestFailed
from bybit_hybrid.protocol.polling import PollNeeds, PollPlanner
from bybit_hybrid.tasks import cancel_and_wait
from bybit_hybrid.transport.errors import AuthError, BybitError, RateLimitedError
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
            await cancel_and_wait([self._task])
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
