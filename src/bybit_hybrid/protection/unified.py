"""Unified protection: router + position manager + trailing stop + aged monitor, wired as one.

protection = UnifiedProtection(settings, rest, store=ProtectionStore(settings.state_db))
protection.attach(stream)          # any PositionStream
await protection.start()           # loads instruments, starts the consumers
await stream.start()
...
await protection.stop()
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any, Final

from bybit_hybrid.protection.aged_adapter import HANDLER_NAME as AGED
from bybit_hybrid.protection.aged_adapter import AgedAdapter, AgedStats
from bybit_hybrid.protection.config import ProtectionSettings, aged_config, trailing_config
from bybit_hybrid.protection.exchange import ProtectionExchange, trigger_price_of
from bybit_hybrid.protection.gateway import ProtectionRest
from bybit_hybrid.protection.limiter import AccountLimiter
from bybit_hybrid.protection.plan import PlanInputs, position_plan
from bybit_hybrid.protection.position_manager import RAW_EVENTS, ManagedPosition, PositionManager
from bybit_hybrid.protection.retry import RetryPolicy
from bybit_hybrid.protection.store import ProtectionStore
from bybit_hybrid.protection.trailing_adapter import HANDLER_NAME as TRAILING
from bybit_hybrid.protection.trailing_adapter import TrailingAdapter
from bybit_hybrid.protection.trailing_records import TrailingStats
from bybit_hybrid.protocol.domain import Instrument
from bybit_hybrid.router.router import EventRouter, RoutedEvent

log = logging.getLogger(__name__)

CONSUMER_NAME: Final = "protection"


class UnifiedProtection:
    """One account's protection. `settings` is an `AppSettings` (`config.ProtectionSettings`)."""

    def __init__(
        self,
        settings: ProtectionSettings,
        rest: ProtectionRest,
        *,
        store: ProtectionStore | None = None,
        limiter: AccountLimiter | None = None,
        retry: RetryPolicy | None = None,
        instruments: dict[str, Instrument] | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        """`clock` is wall time (position ages); `monotonic` paces the stop updates."""
        self.router = EventRouter()
        self.manager = PositionManager(lambda: int(clock() * 1000))
        self.exchange = ProtectionExchange(
            rest, limiter or AccountLimiter(), settings.trailing_sl_trigger_by
        )
        self.store = store
        self.handler_errors: Counter[str] = Counter()
        self.trailing, self.aged = _adapters(
            settings,
            self.exchange,
            store,
            instruments=instruments,
            retry=retry,
            clock=clock,
            monotonic=monotonic,
            sleep=sleep,
        )
        for event in RAW_EVENTS:
            self.router.on(event, self._on_event, name=CONSUMER_NAME)
        self._started = False
        self._clock = clock

    async def _on_event(self, routed: RoutedEvent) -> None:
        """The one consumer: manager, then trailing, then aged, in one step (one router hop).

        Trailing goes first so the aged monitor sees whether a trail is active. The adapters'
        handlers never wait on the exchange (their calls run in their own workers), so one
        mailbox serves both; a handler that raises is logged by name and the other still runs.
        """
        managed = self.manager.transform(routed.data)
        for name, adapter in ((TRAILING, self.trailing), (AGED, self.aged)):
            try:
                await adapter.handle(managed, routed.received_at_s)
            except Exception:
                self.handler_errors[name] += 1
                log.exception("protection handler %s failed on %s", name, routed.name)

    def attach(self, stream: Any) -> None:
        """Listens to a `PositionStream`; call before `stream.start()` to see the bootstrap.

        With `slTriggerBy` other than MarkPrice, the crossed check reads that price type from
        the stream's ticker cache when the stream has one.
        """
        self.router.attach(stream)
        trigger_by = self.exchange.sl_trigger_by

        def trigger_prices(symbol: str) -> Decimal | None:
            try:
                marks = stream.core.marks  # the core exists once the stream has started
            except (AttributeError, RuntimeError):
                return None
            state = marks.state(symbol)
            return None if state is None else trigger_price_of(state, trigger_by)

        self.trailing.trigger_prices = trigger_prices

    async def start(self, *, load_instruments: bool = True) -> None:
        """Starts the consumers. A failed instruments load is logged and retried later: a
        transient exchange error at start-up must not keep protection from starting."""
        if load_instruments:
            await self.trailing.try_load_instruments()
        await self.router.start()
        self._started = True

    async def stop(self) -> None:
        await self.router.stop()
        await self.trailing.stop()
        await self.aged.stop()
        self._started = False

    def idle(self) -> bool:
        """Nothing queued in the router and no exchange call waiting or in flight."""
        return self.router.idle() and self.trailing.idle() and self.aged.idle()

    def plan(self) -> list[dict[str, Any]]:
        """What protection will do to each open position (see `protection.plan`)."""
        now_ms = int(self._clock() * 1000)
        return [
            position_plan(
                PlanInputs(
                    managed,
                    self.trailing.trail(managed.key),
                    self.aged.state(managed.key),
                    self.aged.held(managed.key),
                ),
                self.trailing.config,
                self.aged.config,
                now_ms,
            )
            for managed in self.manager.positions()
        ]

    def status(self) -> dict[str, Any]:
        """A JSON-ready picture of every protected position and the counters."""
        return {
            "running": self._started,
            "positions": [self._position_status(m) for m in self.manager.positions()],
            "trailing": _trailing_counters(self.trailing.stats),
            "aged": _aged_counters(self.aged.stats),
            "plan": self.plan(),
            "router": self.router.stats(),
            "handler_errors": dict(self.handler_errors),
            "limiter_waits": self.exchange.limiter.waits,
        }

    def _position_status(self, managed: ManagedPosition) -> dict[str, Any]:
        key = managed.key
        trail = self.trailing.trail(key)
        aged = self.aged.state(key)
        return {
            "symbol": key.symbol,
            "position_idx": key.idx,
            "side": None if managed.side is None else managed.side.value,
            "mark_price": _text(managed.view.mark_price),
            "pnl_pct": _text(managed.pnl_pct),
            "opened_at_ms": managed.opened_at_ms,
            "age_source": managed.age_source.value,
            "trail_phase": None if trail is None else trail.phase.value,
            "trail_extreme": None if trail is None else str(trail.extreme_price),
            "trail_stop": None if trail is None else _text(trail.stop_price),
            "trail_wanted_stop": None if trail is None else _text(trail.wanted_stop),
            "trail_confirmed_stop": None if trail is None else _text(trail.confirmed_stop),
            "closing": key in self.trailing.closing(),
            "aged_phase": None if aged is None else aged.phase.value,
            "aged_held": self.aged.held(key),
        }


def _trailing_counters(t: TrailingStats) -> dict[str, Any]:
    return {
        "decisions": dict(t.decisions),
        "stops_sent": t.stops_sent,
        "not_modified": t.not_modified,
        "retries": t.retries,
        "failures": t.failures,
        "gone": t.gone,
        "gone_refuted": t.gone_refuted,
        "wrong_side": t.wrong_side,
        "close_failures": t.close_failures,
        "closes": t.closes,
        "adopted": t.adopted,
        "monitor_only": t.monitor_only,
        "resumed": t.resumed,
    }


def _aged_counters(a: AgedStats) -> dict[str, Any]:
    return {
        "closes": a.closes,
        "already_gone": a.already_gone,
        "close_failures": a.close_failures,
        "monitor_only": a.monitor_only,
        "held_existing": a.held_existing,
    }


def _adapters(
    settings: ProtectionSettings,
    exchange: ProtectionExchange,
    store: ProtectionStore | None,
    *,
    instruments: dict[str, Instrument] | None,
    retry: RetryPolicy | None,
    clock: Callable[[], float],
    monotonic: Callable[[], float],
    sleep: Callable[[float], Awaitable[None]] | None,
) -> tuple[TrailingAdapter, AgedAdapter]:
    """The trailing and aged adapters over one exchange; aged asks trailing whether a trail is
    active. `clock` is wall time (ages), `monotonic` paces the stop updates."""
    extra: dict[str, Any] = {} if sleep is None else {"sleep": sleep}
    trailing = TrailingAdapter(
        trailing_config(settings),
        exchange,
        store,
        instruments=instruments,
        retry=retry,
        clock=monotonic,
        **extra,
    )
    aged = AgedAdapter(
        aged_config(settings),
        exchange,
        store,
        trailing.is_active,
        retry=retry,
        clock_ms=lambda: int(clock() * 1000),
        **extra,
    )
    return trailing, aged


def _text(value: object) -> str | None:
    return None if value is None else str(value)
