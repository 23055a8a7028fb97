"""The rollout's judgement of the hybrid stream: failover, alerts and canary freshness.

`Evaluation` samples the hybrid stream every `eval_interval_s` on the stream's clock and feeds
the pure failover (`protocol.failover`) and alert (`protocol.alerts`) machines; a failover
switch hurries or reschedules the REST poller, and a mark frozen on a live ticker gets one
REST ticker sample (issue 19 F4). Switches and alerts are logged and handed to `notify`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from bybit_hybrid.protocol.alerts import AlertEvent, AlertRaised, Alerts, HealthSample, Severity
from bybit_hybrid.protocol.events import PositionEvent
from bybit_hybrid.protocol.failover import (
    AccountObservation,
    Failover,
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
from bybit_hybrid.protocol.session import SessionState
from bybit_hybrid.protocol.subscriptions import SubscriptionConfirmed, SubscriptionFailed
from bybit_hybrid.rollout.sources import HybridSource, RolloutConfig, RolloutMode, rest_drives
from bybit_hybrid.tasks import cancel_and_wait
from bybit_hybrid.transport.poller import RestPoller

log = logging.getLogger(__name__)

# For the alerts a socket is up while it serves its topics and is heard from (see `_serving`).
_UP: Final = (SessionState.LIVE, SessionState.STALE)
# The account's private feed is up only while frames arrive: a STALE socket (TCP up, nothing
# arriving) hides every open and close made meanwhile, so failover must poll (issue 19 F2).
ACCOUNT_FEED_UP: Final = (SessionState.SUBSCRIBING, SessionState.LIVE)


@dataclass(slots=True)
class _Freshness:
    """Canary measurements of the hybrid stream's tickers."""

    samples: int = 0
    stale_samples: int = 0
    max_mark_age_s: dict[str, float] = field(default_factory=dict)


class Evaluation:
    """Failover, alerts and canary freshness for one rollout stream; see the module docstring."""

    def __init__(
        self,
        mode: RolloutMode,
        rollout: RolloutConfig,
        hybrid: HybridSource,
        notify: Callable[[CoreEvent], None],
    ) -> None:
        self.mode = mode
        self.rollout = rollout
        self._hybrid = hybrid
        self._notify = notify
        self.failover = None if rest_drives(mode) else Failover(rollout.failover)
        self.alerts: Alerts | None = None
        self.poller: RestPoller | None = None  # the core's poller, while it runs
        self._task: asyncio.Task[None] | None = None
        self._freshness = _Freshness()
        self._held_since: dict[str, float] = {}
        self._subscription_failures = 0
        self._position_failures = 0
        self._gave_up: set[str] = set()
        self._last_event_at: float | None = None
        self._checks: set[asyncio.Task[None]] = set()

    @property
    def running(self) -> bool:
        return self._task is not None

    def reset(self) -> None:
        """A restart judges the new sockets from scratch."""
        self._held_since.clear()
        self._gave_up.clear()
        self._position_failures = 0
        self._last_event_at = None
        self.alerts = Alerts(self.rollout.alerts)
        if self.failover is not None:
            self.failover = Failover(self.rollout.failover)

    def start(self, poller: RestPoller | None) -> None:
        self.poller = poller
        self._task = asyncio.create_task(self._run(), name="bybit-hybrid-rollout")

    async def stop(self) -> None:
        """Stops the sampling and any mark check in flight; never raises."""
        running = [] if self._task is None else [self._task]
        await cancel_and_wait([*running, *self._checks])
        self._task = None
        self.poller = None

    def observe(self, event: CoreEvent) -> None:
        """Counts failed subscribes (the account's position topic, each ticker's) and notes
        when the hybrid stream last delivered a position event (alerts judge it in every
        mode)."""
        if isinstance(event, PositionEvent):
            self._last_event_at = self._hybrid.now()
        elif isinstance(event, SubscriptionFailed):
            self._subscription_failures += 1
            if event.topic == POSITION_TOPIC and event.connection == PRIVATE:
                self._position_failures += 1
            if event.gave_up:
                self._gave_up.add(event.topic)
        elif isinstance(event, SubscriptionConfirmed):
            if event.topic == POSITION_TOPIC and event.connection == PRIVATE:
                self._position_failures = 0
            self._gave_up.discard(event.topic)

    async def _run(self) -> None:
        while True:
            try:
                self._evaluate(self._hybrid.now())
            except Exception:
                log.exception("rollout evaluation failed")
            await asyncio.sleep(self.rollout.eval_interval_s)

    def _evaluate(self, now: float) -> None:
        core = core_of(self._hybrid)
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
            for symbol in streamed_held(core)
        }
        switches = self.failover.evaluate(now, account, symbols)
        for symbol in self.failover.take_mark_checks():
            self._check_frozen_mark(symbol)
        for switch in switches:
            self._switched(switch)
        if self.poller is not None and switches:
            if any(s.new is FeedMode.POLLING for s in switches):
                self.poller.hurry()
            else:
                self.poller.reschedule()

    def _check_frozen_mark(self, symbol: str) -> None:
        """One REST ticker sample for a mark that stopped moving on a live ticker (issue 19
        F4): the failover machine decides from it whether the market is quiet or the feed is
        frozen."""

        async def check() -> None:
            rest_mark = None
            try:
                updates = await self._hybrid.rest.get_tickers(symbol)
                rest_mark = next((u.mark_price for u in updates if u.symbol == symbol), None)
            except Exception as exc:  # any failure: the machine asks again a stretch later
                log.warning("frozen-mark check of %s failed: %s", symbol, exc)
            core = core_of(self._hybrid)
            if self.failover is not None and core is not None:
                stream_mark = core.marks.mark(symbol)
                self.failover.on_mark_check(
                    symbol, self._hybrid.now(), rest_mark=rest_mark, stream_mark=stream_mark
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
        self._notify(switch)

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
        self._notify(alert)

    def _health(self, core: HybridCore, ages: Mapping[str, float]) -> HealthSample:
        return HealthSample(
            sockets_up={name: _serving(core, name, self._hybrid.now()) for name in core.sockets()},
            last_event_at=self._last_event_at,
            reconnections=core.stats.reconnections,
            subscription_failures=self._subscription_failures,
            open_positions=len(core.book),
            expected_tickers=len(ages),
            confirmed_tickers=core.subscribed_tickers(),
            mark_ages_s=ages,
            bad_marks={} if self.failover is None else self.failover.frozen_marks(),
            heard_at={n: at for n in core.sockets() if (at := core.rx_at(n)) is not None},
        )

    def _ticker_ages(self, core: HybridCore, now: float) -> dict[str, float]:
        """Seconds since each held, streamed symbol's ticker last showed life (any frame of it,
        or of its socket: issue 19 F4), or since it is held."""
        held = streamed_held(core)
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

    def canary_status(self) -> dict[str, Any]:
        fresh = self._freshness
        return {
            "samples": fresh.samples,
            "stale_samples": fresh.stale_samples,
            "max_mark_age_s": {s: round(a, 3) for s, a in sorted(fresh.max_mark_age_s.items())},
        }


def core_of(hybrid: HybridSource) -> HybridCore | None:
    """The hybrid stream's core, or None before its first start."""
    try:
        return hybrid.core
    except RuntimeError:
        return None


def streamed_held(core: HybridCore) -> set[str]:
    """The held symbols whose marks the streams serve."""
    return {s for s in core.book.open_symbols() if core.streams(s)}


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
