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
apart. An evaluation task samples the streams every `eval_interval_s` and feeds the pure
failover and alert machines with the stream's clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from bybit_hybrid.errors import KeyRejectedError
from bybit_hybrid.facade import PositionStream
from bybit_hybrid.protocol.alerts import (
    AlertConfig,
    AlertEvent,
    AlertRaised,
    Alerts,
    HealthSample,
    Severity,
)
from bybit_hybrid.protocol.compare import Comparator, CompareConfig, Divergence, Feed
from bybit_hybrid.protocol.domain import PositionKey, TickerUpdate
from bybit_hybrid.protocol.events import PositionEvent, PositionView
from bybit_hybrid.protocol.failover import (
    AccountObservation,
    Failover,
    FailoverConfig,
    FailoverSwitched,
    FeedMode,
    SymbolObservation,
)
from bybit_hybrid.protocol.hybrid import (
    POSITION_TOPIC,
    PRIVATE,
    TICKER_PREFIX,
    CoreEvent,
    HybridCore,
)
from bybit_hybrid.protocol.polling import PollConfig, PollNeeds, PollPlanner
from bybit_hybrid.protocol.session import SessionState
from bybit_hybrid.protocol.subscriptions import SubscriptionConfirmed, SubscriptionFailed
from bybit_hybrid.rollout.poller import AdaptiveBybitStream, RestPoller, rest_failed
from bybit_hybrid.rollout.sources import HybridSource, RolloutMode, check_mode, rest_drives
from bybit_hybrid.router.fanout import CoreListener, Fanout
from bybit_hybrid.transport.errors import BybitError
from bybit_hybrid.transport.rest import PositionPage

log = logging.getLogger(__name__)

# For the alerts a socket is up while it serves its topics and is heard from (see `_serving`).
_UP: Final = (SessionState.LIVE, SessionState.STALE)
# The account's private feed is up only while frames arrive: a STALE socket (TCP up, nothing
# arriving) hides every open and close made meanwhile, so failover must poll (issue 19 F2).
ACCOUNT_FEED_UP: Final = (SessionState.SUBSCRIBING, SessionState.LIVE)


@dataclass(frozen=True, slots=True)
class RolloutConfig:
    """Everything the rollout machinery tunes; `service.streams` builds it from AppSettings."""

    cutover_pct: float = 0.0
    failover: FailoverConfig = field(default_factory=FailoverConfig)
    alerts: AlertConfig = field(default_factory=AlertConfig)
    poll: PollConfig = field(default_factory=PollConfig)
    compare: CompareConfig = field(default_factory=CompareConfig)
    # How often the streams are sampled for failover and alerts.
    eval_interval_s: float = 0.25

    def __post_init__(self) -> None:
        if not 0 <= self.cutover_pct <= 100:
            raise ValueError("cutover_pct must be within 0..100")
        if self.eval_interval_s <= 0:
            raise ValueError("eval_interval_s must be positive")


@dataclass(slots=True)
class _Freshness:
    """Canary measurements of the hybrid stream's tickers."""

    samples: int = 0
    stale_samples: int = 0
    max_mark_age_s: dict[str, float] = field(default_factory=dict)


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
        self.failover: Failover | None = None
        if not self._rest_drives:
            self.failover = Failover(self.rollout.failover)
        self.comparator = Comparator(self.rollout.compare) if mode == "parallel" else None
        self.alerts: Alerts | None = None
        self._poller: RestPoller | None = None
        self._eval_task: asyncio.Task[None] | None = None
        self._freshness = _Freshness()
        self._held_since: dict[str, float] = {}
        self._subscription_failures = 0
        self._position_failures = 0
        self._gave_up: set[str] = set()
        self._last_event_at: float | None = None
        self._checks: set[asyncio.Task[None]] = set()

    def __repr__(self) -> str:
        return f"RolloutStream(mode={self.mode!r}, endpoints={self.endpoints.name!r})"

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        if self._eval_task is not None:
            raise RuntimeError("stream is already started")
        if self.rest_stream is not None:
            await self.rest_stream.start()
        await self.hybrid.start()
        # A restart judges the new sockets from scratch.
        self._held_since.clear()
        self._gave_up.clear()
        self._position_failures = 0
        self._last_event_at = None
        self.alerts = Alerts(self.rollout.alerts)
        if self.failover is not None:
            self.failover = Failover(self.rollout.failover)
            planner = PollPlanner(self.rollout.poll)
            target = _CoreTarget(self)
            self._poller = RestPoller(
                self.hybrid.rest, target, planner, clock=self.hybrid.now, first_poll_delayed=True
            )
            self._poller.start()
        self._eval_task = asyncio.create_task(self._evaluate_loop(), name="bybit-hybrid-rollout")

    async def stop(self) -> None:
        """Stops every part; never raises."""
        if self._eval_task is not None:
            self._eval_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._eval_task
        self._eval_task = None
        for task in list(self._checks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
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
            status["canary"] = self._canary_status()
        status["stats"] = self.get_stats()
        return status

    def comparison_summary(self) -> dict[str, object] | None:
        return None if self.comparator is None else self.comparator.summary()

    # --- events from the two streams ---------------------------------------------------------

    def _on_hybrid_event(self, event: CoreEvent) -> None:
        self._track_subscriptions(event)
        if isinstance(event, PositionEvent):
            self._last_event_at = self.now()  # alerts judge the hybrid stream in every mode
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
        hybrid_core = self._core_or_none()
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

    def _track_subscriptions(self, event: CoreEvent) -> None:
        """Counts failed subscribes: the account's (position topic) and each ticker's."""
        if isinstance(event, SubscriptionFailed):
            self._subscription_failures += 1
            if event.topic == POSITION_TOPIC and event.connection == PRIVATE:
                self._position_failures += 1
            if event.gave_up:
                self._gave_up.add(event.topic)
        elif isinstance(event, SubscriptionConfirmed):
            if event.topic == POSITION_TOPIC and event.connection == PRIVATE:
                self._position_failures = 0
            self._gave_up.discard(event.topic)

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

    # --- evaluation: failover, alerts, canary freshness ---------------------------------------

    async def _evaluate_loop(self) -> None:
        while True:
            try:
                self._evaluate(self.now())
            except Exception:
                log.exception("rollout evaluation failed")
            await asyncio.sleep(self.rollout.eval_interval_s)

    def _evaluate(self, now: float) -> None:
        core = self._core_or_none()
        if core is None:
            return
        ages = self._ticker_ages(core, now)
        if self.failover is not None:
            self._evaluate_failover(core, now)
        if self.alerts is not None:
            for alert in self.alerts.evaluate(now, self._health(core, ages)):
                self._alert(alert)
        if self.mode == "canary":
            self._sample_freshness(ages)

    def _evaluate_failover(self, core: HybridCore, now: float) -> None:
        assert self.failover is not None
        private = core.session(PRIVATE)
        confirmed = POSITION_TOPIC in private.subscriptions.confirmed
        account = AccountObservation(
            private_up=private.state in ACCOUNT_FEED_UP and confirmed,
            subscription_failures=self._position_failures,
            gave_up=POSITION_TOPIC in self._gave_up,
        )
        symbols = {
            symbol: SymbolObservation(
                core.ticker_heard_at(symbol),
                gave_up=TICKER_PREFIX + symbol in self._gave_up,
                mark_at=core.mark_frame_at(symbol),
            )
            for symbol in self._streamed_held(core)
        }
        switches = self.failover.evaluate(now, account, symbols)
        for symbol in self.failover.take_mark_checks():
            self._check_frozen_mark(symbol)
        for switch in switches:
            self._switched(switch)
        if self._poller is not None and switches:
            if any(s.new is FeedMode.POLLING for s in switches):
                self._poller.hurry()
            else:
                self._poller.reschedule()

    def _check_frozen_mark(self, symbol: str) -> None:
        """One REST ticker sample for a mark that stopped moving on a live ticker (issue 19
        F4): the failover machine decides from it whether the market is quiet or the feed is
        frozen."""

        async def check() -> None:
            rest_mark = None
            try:
                updates = await self.hybrid.rest.get_tickers(symbol)
                rest_mark = next((u.mark_price for u in updates if u.symbol == symbol), None)
            except Exception as exc:  # any failure: the machine asks again a stretch later
                log.warning("frozen-mark check of %s failed: %s", symbol, exc)
            core = self._core_or_none()
            if self.failover is not None and core is not None:
                stream_mark = core.marks.mark(symbol)
                self.failover.on_mark_check(
                    symbol, self.now(), rest_mark=rest_mark, stream_mark=stream_mark
                )

        task = asyncio.create_task(check(), name=f"bybit-hybrid-mark-check-{symbol}")
        self._checks.add(task)
        task.add_done_callback(self._checks.discard)

    def _switched(self, switch: FailoverSwitched) -> None:
        level = logging.WARNING if switch.new is FeedMode.POLLING else logging.INFO
        fields = {
            "scope": switch.scope,
            "old": switch.old.value,
            "new": switch.new.value,
            "reason": switch.reason,
        }
        log.log(
            level,
            "failover: %s %s -> %s (%s)",
            switch.scope,
            switch.old.value,
            switch.new.value,
            switch.reason,
            extra={"event_fields": {"failover": fields}},
        )
        self._listeners.notify(switch)

    def _alert(self, alert: AlertEvent) -> None:
        raised = isinstance(alert, AlertRaised)
        if raised:
            level = logging.ERROR if alert.severity is Severity.CRITICAL else logging.WARNING
        else:
            level = logging.INFO
        fields = {
            "name": alert.name,
            "severity": alert.severity.value,
            "state": "raised" if raised else "cleared",
            "message": alert.message,
        }
        log.log(
            level,
            "alert %s %s (%s): %s",
            alert.name,
            fields["state"],
            alert.severity.value,
            alert.message,
            extra={"event_fields": {"alert": fields}},
        )
        self._listeners.notify(alert)

    def _health(self, core: HybridCore, ages: Mapping[str, float]) -> HealthSample:
        return HealthSample(
            sockets_up={name: _serving(core, name, self.now()) for name in core.sockets()},
            last_event_at=self._last_event_at,
            reconnections=core.stats.reconnections,
            subscription_failures=self._subscription_failures,
            open_positions=len(core.book),
            expected_tickers=len(ages),
            confirmed_tickers=core.subscribed_tickers(),
            mark_ages_s=ages,
            bad_marks={} if self.failover is None else self.failover.frozen_marks(),
        )

    def _ticker_ages(self, core: HybridCore, now: float) -> dict[str, float]:
        """Seconds since each held, streamed symbol's ticker last showed life (any frame of it,
        or of its socket: issue 19 F4), or since it is held."""
        held = self._streamed_held(core)
        for symbol in [s for s in self._held_since if s not in held]:
            del self._held_since[symbol]
        ages: dict[str, float] = {}
        for symbol in held:
            since = self._held_since.setdefault(symbol, now)
            heard = max(core.ticker_heard_at(symbol) or since, since)
            ages[symbol] = now - heard
        return ages

    def _sample_freshness(self, ages: Mapping[str, float]) -> None:
        fresh = self._freshness
        for symbol, age_s in ages.items():
            fresh.samples += 1
            if age_s >= self.rollout.failover.mark_stale_s:
                fresh.stale_samples += 1
            fresh.max_mark_age_s[symbol] = max(fresh.max_mark_age_s.get(symbol, 0.0), age_s)

    def _streamed_held(self, core: HybridCore) -> set[str]:
        return {s for s in core.book.open_symbols() if core.streams(s)}

    def _core_or_none(self) -> HybridCore | None:
        try:
            return self.hybrid.core
        except RuntimeError:
            return None

    def _cutover_status(self) -> dict[str, Any]:
        core = self._core_or_none()
        held = sorted(core.book.open_symbols()) if core is not None else []
        return {
            "pct": self.rollout.cutover_pct,
            "streamed_symbols": [s for s in held if core is not None and core.streams(s)],
            "rest_symbols": [s for s in held if core is not None and not core.streams(s)],
        }

    def _canary_status(self) -> dict[str, Any]:
        fresh = self._freshness
        return {
            "samples": fresh.samples,
            "stale_samples": fresh.stale_samples,
            "max_mark_age_s": {s: round(a, 3) for s, a in sorted(fresh.max_mark_age_s.items())},
        }

    # --- the core as a poll target (cutover, hybrid) -----------------------------------------

    def _needs(self) -> PollNeeds:
        core = self._core_or_none()
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


def _serving(core: HybridCore, name: str, now: float) -> bool:
    """Up, for the alerts: subscribed (LIVE or STALE) and heard from within one ping + pong.
    A socket that accepts the upgrade and then answers nothing (a black hole, whose subscribes
    time out and settle) is down, not "up with zero subscriptions" (issue 19 F7)."""
    session = core.session(name)
    if session.state not in _UP:
        return False
    rx_at = core.rx_at(name)
    heartbeat_s = session.config.ping_interval_s + session.config.pong_timeout_s
    return rx_at is not None and now - rx_at <= heartbeat_s


def _by_key(views: list[PositionView]) -> dict[PositionKey, PositionView]:
    return {view.key: view for view in views}
