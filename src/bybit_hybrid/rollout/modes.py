"""`RolloutStream`: the canary, parallel, cutover and hybrid modes behind one stream API.

Who drives the events a consumer sees (`rest` mode is `AdaptiveBybitStream` alone):

    canary    REST (AdaptiveBybitStream); the hybrid stream runs beside it with no handler,
              and only its health (alerts) and freshness (ticker ages) are measured
    parallel  REST; every hybrid mark and position is compared with the REST view
              (`protocol.compare.Comparator`), divergences are events and a summary
    cutover   one book, the hybrid core's: symbols in the `cutover_pct` share (stable sha256
              buckets) are streamed, the others are served by REST polling alone
    hybrid    one book, the hybrid core's: the streams drive, REST reconciles, and the
              failover machine (`protocol.failover`) switches a symbol (stale mark) or the
              account (private stream down, subscriptions failing) to REST polling at once
              and back once the streams have been healthy for `healthy_for_s`

In cutover and hybrid, REST answers go into the same core as the sockets' frames, so a
consumer sees one consistent book whichever source is serving; only `source` tells them
apart. Both streams are handed in by the composition root (`service.streams.rollout_stream`);
`rollout.evaluation` samples them every `eval_interval_s` and feeds the pure failover and
alert machines with the stream's clock.
"""

from __future__ import annotations

import logging
from typing import Any

from bybit_hybrid.errors import KeyRejectedError
from bybit_hybrid.facade import PositionStream
from bybit_hybrid.protocol.alerts import (
    Alerts,
    Severity,
)
from bybit_hybrid.protocol.compare import Comparator, Divergence, Feed
from bybit_hybrid.protocol.domain import PositionKey, TickerUpdate
from bybit_hybrid.protocol.events import PositionClosed, PositionEvent, PositionOpened, PositionView
from bybit_hybrid.protocol.failover import (
    Failover,
)
from bybit_hybrid.protocol.hybrid import (
    CoreEvent,
    HybridCore,
)
from bybit_hybrid.protocol.polling import PollNeeds, PollPlanner
from bybit_hybrid.rollout.evaluation import ACCOUNT_FEED_UP, Evaluation, core_of
from bybit_hybrid.rollout.poller import AdaptiveBybitStream
from bybit_hybrid.rollout.sources import (
    MODES,
    HybridSource,
    RolloutConfig,
    RolloutMode,
    check_mode,
    rest_drives,
)
from bybit_hybrid.router.fanout import CoreListener, Fanout
from bybit_hybrid.transport.errors import BybitError
from bybit_hybrid.transport.poller import RestPoller, rest_failed
from bybit_hybrid.transport.rest import PositionPage

log = logging.getLogger(__name__)

# Re-exported: their homes are `rollout.sources` and `rollout.evaluation`.
__all__ = ["ACCOUNT_FEED_UP", "MODES", "RolloutConfig", "RolloutMode", "RolloutStream"]


class RolloutStream(PositionStream):
    """One of the rollout modes behind the `PositionStream` API; see the module docstring."""

    def __init__(
        self,
        mode: RolloutMode,
        hybrid: HybridSource,
        rest_stream: AdaptiveBybitStream | None = None,
        *,
        rollout: RolloutConfig | None = None,
    ) -> None:
        """Both streams are built by the composition root (`service.streams.rollout_stream`):
        `hybrid` with the consumer's handler unless REST drives, `rest_stream` (with it) only
        where REST drives (canary, parallel); in cutover `hybrid`'s config carries the share
        (`rollout.sources.hybrid_config`)."""
        self.mode = check_mode(mode)
        self.rollout = rollout or RolloutConfig()
        self._rest_drives = rest_drives(mode)
        if self._rest_drives != (rest_stream is not None):
            need = "needs" if self._rest_drives else "takes no"
            raise ValueError(f"mode {mode}: {need} REST-only stream (rest_stream)")
        self._listeners = Fanout(None)  # listeners only: handlers belong to the driving stream
        self.hybrid = hybrid
        self.hybrid.add_listener(self._on_hybrid_event)
        self.rest_stream = rest_stream
        if rest_stream is not None:
            rest_stream.add_listener(self._on_rest_event)
            rest_stream.add_poll_listener(self._on_rest_poll)
        self.endpoints = self.hybrid.endpoints
        self.comparator = Comparator(self.rollout.compare) if mode == "parallel" else None
        self.evaluation = Evaluation(self.mode, self.rollout, hybrid, self._listeners.notify)
        self._poller: RestPoller | None = None

    def __repr__(self) -> str:
        return f"RolloutStream(mode={self.mode!r}, endpoints={self.endpoints.name!r})"

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        if self.evaluation.running:
            raise RuntimeError("stream is already started")
        if self.rest_stream is not None:
            await self.rest_stream.start()
        await self.hybrid.start()
        self.evaluation.reset()
        if self.failover is not None:
            planner = PollPlanner(self.rollout.poll)
            target = _CoreTarget(self)
            self._poller = RestPoller(
                self.hybrid.rest, target, planner, clock=self.hybrid.now, first_poll_delayed=True
            )
            self._poller.start()
        self.evaluation.start(self._poller)

    async def stop(self) -> None:
        """Stops every part; never raises."""
        await self.evaluation.stop()
        if self._poller is not None:
            await self._poller.stop()
        self._poller = None
        await self.hybrid.stop()
        if self.rest_stream is not None:
            await self.rest_stream.stop()

    async def wait_ready(self, timeout_s: float = 10.0) -> None:
        """Waits for the driving stream's first REST snapshot; a key rejected before it stops
        every part and raises `KeyRejectedError`."""
        try:
            await self.driver.wait_ready(timeout_s)
        except KeyRejectedError:
            await self.stop()
            raise

    def add_listener(self, listener: CoreListener) -> None:
        """The driving stream's events, plus failover switches, alerts and divergences."""
        self._listeners.add_listener(listener)

    # --- queries -----------------------------------------------------------------------------

    @property
    def driver(self) -> AdaptiveBybitStream | HybridSource:
        return self.rest_stream if self.rest_stream is not None else self.hybrid

    @property
    def poller(self) -> RestPoller | None:
        return self._poller

    @property
    def failover(self) -> Failover | None:
        """The failover machine (cutover, hybrid), whose switches move scopes to REST."""
        return self.evaluation.failover

    @property
    def alerts(self) -> Alerts | None:
        """The alert machine, once started."""
        return self.evaluation.alerts

    def now(self) -> float:
        return self.hybrid.now()

    def positions(self) -> list[PositionView]:
        return self.driver.positions()

    def get_stats(self) -> dict[str, Any]:
        """The driving stream's counters plus flat rollout counters (for metrics)."""
        stats = dict(self.driver.get_stats())
        stats["mode"] = self.mode
        if self.alerts is not None:
            active = self.alerts.active().values()
            stats["alerts_active_warning"] = sum(a.severity is Severity.WARNING for a in active)
            stats["alerts_active_critical"] = sum(a.severity is Severity.CRITICAL for a in active)
            stats["alerts_raised_warning"] = self.alerts.stats.raised_warning
            stats["alerts_raised_critical"] = self.alerts.stats.raised_critical
        if self.failover is not None:
            stats["account_mode"] = self.failover.account_mode.value
            stats["polling_symbols"] = len(self.failover.polling_symbols())
            stats["failover_to_polling"] = self.failover.stats.to_polling
            stats["failover_to_streaming"] = self.failover.stats.to_streaming
        if self._poller is not None:
            planner = self._poller.planner.stats
            stats["polls"] = planner.polls
            stats["poll_failures"] = planner.failures
            stats["rate_limited"] = planner.rate_limited
        if self.comparator is not None:
            c = self.comparator.stats
            stats["mark_comparisons"] = c.mark_comparisons
            stats["divergences_warning"] = c.mark_warnings
            stats["divergences_critical"] = self.comparator.criticals
        return stats

    def get_status(self) -> dict[str, Any]:
        now = self.now()
        status: dict[str, Any] = dict(self.driver.get_status())
        status["mode"] = self.mode
        status["driver"] = "rest" if self._rest_drives else "hybrid"
        if self._rest_drives:
            status["hybrid"] = self.hybrid.get_status()
        if self.mode == "cutover":
            status["cutover"] = self._cutover_status()
        if self.failover is not None:
            status["failover"] = self.failover.status(now)
        if self._poller is not None:
            status["poller"] = self._poller.status(now)
        if self.alerts is not None:
            status["alerts"] = self.alerts.status(now)
        if self.comparator is not None:
            status["comparison"] = self.comparator.summary()
        if self.mode == "canary":
            status["canary"] = self.evaluation.canary_status()
        status["stats"] = self.get_stats()
        return status

    def comparison_summary(self) -> dict[str, object] | None:
        return None if self.comparator is None else self.comparator.summary()

    # --- events from the two streams ---------------------------------------------------------

    def _on_hybrid_event(self, event: CoreEvent) -> None:
        self.evaluation.observe(event)
        if self._poller is not None and isinstance(event, PositionOpened | PositionClosed):
            # An open or close changes what the polls must serve (a cutover's REST share is
            # polled fast while it holds a position): without this the first fast poll after
            # the bootstrap waited a whole slow interval.
            self._poller.reschedule()
        if not self._rest_drives:
            self._listeners.notify(event)
            return
        if self.comparator is None:
            return
        now = self.now()
        if isinstance(event, PositionEvent):
            self._record_hybrid_mark(self.hybrid.core, event.key.symbol)
            self.comparator.on_position_event(Feed.HYBRID, event, now)

    def _on_rest_event(self, event: CoreEvent) -> None:
        if self.comparator is not None and isinstance(event, PositionEvent):
            self.comparator.on_position_event(Feed.REST, event, self.now())
        self._listeners.notify(event)

    def _on_rest_poll(self, _rest_now: float) -> None:
        """After each REST poll (parallel): its marks and book against the hybrid's."""
        if self.comparator is None or self.rest_stream is None:
            return
        now = self.now()
        rest_book = self.rest_stream.book
        hybrid_core = core_of(self.hybrid)
        if hybrid_core is None:
            return
        for symbol in sorted(rest_book.held_symbols()):
            self._record_hybrid_mark(hybrid_core, symbol)
            rest_mark = rest_book.marks.mark(symbol)
            rest_ts_ms = rest_book.marks.last_ts_ms(symbol)
            if rest_mark is not None and rest_ts_ms is not None:
                found = self.comparator.on_rest_mark(symbol, rest_mark, rest_ts_ms, now)
                self._divergence(found)
        rest_views = _by_key(rest_book.book.views())
        hybrid_views = _by_key(hybrid_core.book.views())
        for found_position in self.comparator.check_books(now, rest_views, hybrid_views):
            self._divergence(found_position)

    def _record_hybrid_mark(self, core: HybridCore, symbol: str) -> None:
        """The mark the hybrid values `symbol` at, stamped with its ticker's exchange time."""
        mark, ts_ms = core.marks.mark(symbol), core.marks.last_ts_ms(symbol)
        if self.comparator is not None and mark is not None and ts_ms is not None:
            self.comparator.on_hybrid_mark(symbol, mark, ts_ms)

    def _divergence(self, found: Divergence | None) -> None:
        if found is None:
            return
        level = logging.ERROR if found.severity is Severity.CRITICAL else logging.WARNING
        fields = {
            "kind": found.kind,
            "subject": found.subject,
            "severity": found.severity.value,
            "pct": None if found.pct is None else str(found.pct),
        }
        log.log(
            level,
            "parallel: %s divergence on %s (%s): %s",
            found.kind,
            found.subject,
            found.severity.value,
            found.detail,
            extra={"event_fields": {"divergence": fields}},
        )
        self._listeners.notify(found)

    def _cutover_status(self) -> dict[str, Any]:
        core = core_of(self.hybrid)
        held = sorted(core.book.open_symbols()) if core is not None else []
        return {
            "pct": self.rollout.cutover_pct,
            "streamed_symbols": [s for s in held if core is not None and core.streams(s)],
            "rest_symbols": [s for s in held if core is not None and not core.streams(s)],
        }

    # --- the core as a poll target (cutover, hybrid) -----------------------------------------

    def _needs(self) -> PollNeeds:
        core = core_of(self.hybrid)
        if core is None or self.failover is None:
            return PollNeeds()
        held = core.book.open_symbols()
        unstreamed = {s for s in held if not core.streams(s)}
        polling = self.failover.polling_symbols() & held
        account_polls = self.failover.polls_positions()
        # A cutover's REST share learns of new positions only by polling.
        rest_share = self.mode == "cutover" and self.rollout.cutover_pct < 100
        return PollNeeds(
            open_positions=len(core.book),
            rest_drives=account_polls or rest_share,
            degraded=self.failover.degraded(),
            mark_symbols=frozenset(unstreamed | polling),
        )

    def _apply_positions(self, page: PositionPage, requested_at: float) -> None:
        def feed(core: HybridCore, now: float) -> None:
            core.on_positions(
                0,
                page.positions,
                requested_at=requested_at,
                response_ts_ms=page.response_time_ms,
                now=now,
                reason="poll",
            )

        self.hybrid.apply(feed)

    def _apply_tickers(self, updates: list[TickerUpdate]) -> None:
        self.hybrid.apply(lambda core, now: core.on_tickers(0, updates, now))

    def _poll_failed(self, error: BybitError, retry_in_s: float) -> None:
        self._listeners.notify(rest_failed(error, retry_in_s))


class _CoreTarget:
    """The hybrid core as a poll target: REST answers go into the same book as the frames."""

    def __init__(self, stream: RolloutStream) -> None:
        self._stream = stream

    def needs(self) -> PollNeeds:
        return self._stream._needs()

    def apply_positions(self, page: PositionPage, requested_at: float, now: float) -> None:
        self._stream._apply_positions(page, requested_at)

    def apply_tickers(self, updates: list[TickerUpdate], now: float) -> None:
        self._stream._apply_tickers(updates)

    def confirmations(self) -> list[str | None]:
        return []  # the core asks for its confirmations itself (FetchPositions "confirm")

    def apply_confirmation(
        self, symbol: str | None, page: PositionPage, requested_at: float, now: float
    ) -> None:
        raise AssertionError("the core confirms through its own REST requests")

    def poll_failed(self, error: BybitError, retry_in_s: float, now: float) -> None:
        self._stream._poll_failed(error, retry_in_s)

    def polled(self, now: float) -> None:
        """Nothing to do: the core already delivered what the poll changed."""


def _by_key(views: list[PositionView]) -> dict[PositionKey, PositionView]:
    return {view.key: view for view in views}
