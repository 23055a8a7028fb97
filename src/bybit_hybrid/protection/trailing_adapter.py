"""Trailing-stop adapter: feeds managed positions to the pure core and executes its decisions.

Per position it keeps the trail state (persisted before any exchange call), the latest view and
at most one worker task. The worker never executes a stale job: before every attempt it asks
the core again, from the newest mark and the newest knowledge of the exchange's stop, so it
sends only the newest wanted stop, drops one the exchange already holds or beats (a hand-set
stop included), and turns into a market close once the trigger price is through the stop.

Outcomes go back to the core: a successful or 34040 reply confirms the stop; 10001 "wrong side"
marks that price as never to be sent again and re-decides from a fresh REST price; 10001 "zero
position" is believed only when the position list agrees. Every other failure waits (the retry
policy's backoff, a 10006 reset) and tries again while the position is open: an unconfirmed
stop is never given up. A market close repeats until the exchange shows the position flat.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from decimal import Decimal
from typing import Final, TypeVar

from bybit_hybrid.protection import trailing as core
from bybit_hybrid.protection.adapter import ManagedAdapter
from bybit_hybrid.protection.closer import Closer
from bybit_hybrid.protection.config import TrailingConfig
from bybit_hybrid.protection.gateway import ProtectionGateway
from bybit_hybrid.protection.position_manager import (
    ManagedEvent,
    ManagedKind,
    ManagedPosition,
)
from bybit_hybrid.protection.retry import RetryPolicy, is_position_gone, is_wrong_side
from bybit_hybrid.protection.store import ProtectionStore
from bybit_hybrid.protection.trailing import CloseNow, Hold, MoveStop, TrailState
from bybit_hybrid.protection.trailing_records import (
    SendRecord,
    TrailingStats,
    other_lifetime,
    same_lifetime,
)
from bybit_hybrid.protocol.domain import Instrument, PositionKey
from bybit_hybrid.wire.retcodes import BybitError

log = logging.getLogger(__name__)

HANDLER_NAME: Final = "trailing"
_SEND_RECORDS: Final = 10_000
_UNSEEN: Final = object()  # no exchange stop seen yet for a key
INSTRUMENTS_RETRY_S: Final = 5.0

TriggerPrices = Callable[[str], Decimal | None]


_T = TypeVar("_T")


class _SupersededError(Exception):
    """A stop request was abandoned in flight for a market close."""


class TrailingAdapter(ManagedAdapter):
    """The trailing-stop consumer; `register(router)` subscribes it to managed events.

    `clock` is monotonic seconds (the interval rule). `trigger_prices(symbol)` gives the latest
    price of the `slTriggerBy` type when that is not the mark (e.g. from the stream's tickers).
    """

    def __init__(
        self,
        config: TrailingConfig,
        exchange: ProtectionGateway,
        store: ProtectionStore | None = None,
        *,
        instruments: Mapping[str, Instrument] | None = None,
        retry: RetryPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        trigger_prices: TriggerPrices | None = None,
    ) -> None:
        self.config = config
        self._exchange = exchange
        self._store = store
        self._instruments: dict[str, Instrument] = dict(instruments or {})
        self._retry = retry or RetryPolicy()
        self._clock = clock
        self._sleep = sleep
        self.trigger_prices = trigger_prices
        self._closer = Closer(
            exchange, self._retry, sleep, on_order=self._count_order, on_failure=self._count_failure
        )
        self._stored: dict[PositionKey, TrailState] = store.load_trails() if store else {}
        self._trails: dict[PositionKey, TrailState] = {}
        self._positions: dict[PositionKey, ManagedPosition] = {}
        self._seen_stop: dict[PositionKey, object] = {}
        self._fresh_trigger: dict[PositionKey, Decimal] = {}
        self._cause_at_s: dict[PositionKey, float] = {}
        self._tasks: dict[PositionKey, asyncio.Task[None]] = {}
        self._wake: dict[PositionKey, asyncio.Event] = {}
        self._closing: set[PositionKey] = set()
        self._skipped: set[PositionKey] = set()
        self._instruments_retry_at_s: float | None = None
        # The position list confirmed the position is flat but the stream has not reported the
        # close yet: marks for these keys must not start a fresh trail (and a doomed stop) each.
        self._gone: set[PositionKey] = set()
        self.sends: deque[SendRecord] = deque(maxlen=_SEND_RECORDS)
        self.stats = TrailingStats()

    # --- wiring and queries ----------------------------------------------------------------

    async def load_instruments(self) -> None:
        self._instruments.update(await self._exchange.instruments())

    def is_active(self, key: PositionKey) -> bool:
        state = self._trails.get(key)
        return state is not None and state.is_active

    def trail(self, key: PositionKey) -> TrailState | None:
        return self._trails.get(key)

    def trails(self) -> dict[PositionKey, TrailState]:
        return dict(self._trails)

    def closing(self) -> frozenset[PositionKey]:
        return frozenset(self._closing)

    # --- events (`adapter.ManagedAdapter.handle` opens them) --------------------------------

    def _reconciled(self, open_keys: frozenset[PositionKey]) -> None:
        self._prune(open_keys)

    def _closed(self, key: PositionKey) -> None:
        self._gone.discard(key)
        self._drop(key, "position closed")

    async def _on_position(self, event: ManagedEvent, received_at_s: float) -> None:
        key = event.position.key
        if key in self._gone:
            if event.kind is ManagedKind.MARK:
                return  # the exchange showed it flat; wait for the stream's close
            self._gone.discard(key)  # opened or changed again: a live position after all
        self._positions[key] = event.position
        state = self._trails.get(key)
        if state is not None and other_lifetime(state, event.position):
            self._drop(key, "a new position at the same key")
            self._positions[key] = event.position
            state = None
        state = state or await self._create(event.position)
        if state is None or key not in self._positions:
            return
        self._step(key, state, event, received_at_s)

    def _step(
        self, key: PositionKey, state: TrailState, event: ManagedEvent, cause_at_s: float
    ) -> None:
        view = event.position.view
        if view.entry_price and view.entry_price != state.entry_price:
            state = core.rebase_entry(state, view.entry_price)  # an add moved the average
        self._trails[key] = self._observe_stop(key, state, view.stop_loss)
        decision = self._decide(key)
        if decision is None:
            return
        self._cause_at_s[key] = cause_at_s
        self._act(key, decision)

    def _observe_stop(
        self, key: PositionKey, state: TrailState, stop: Decimal | None
    ) -> TrailState:
        """Applies the exchange's stop when it is news (every view repeats the last one seen)."""
        if self._seen_stop.get(key, _UNSEEN) == stop:
            return state
        self._seen_stop[key] = stop
        seen = core.seen_on_exchange(state, stop)
        if seen.wanted_stop != state.wanted_stop:
            self.stats.adopted += 1
            log.info("%s: adopted the tighter stop %s set on the exchange", key, stop)
        return seen

    def _decide(self, key: PositionKey) -> core.Decision | None:
        """Runs the core on the latest view; commits and persists the state it returns."""
        state, position = self._trails.get(key), self._positions.get(key)
        if state is None or position is None or position.view.mark_price is None:
            return None
        mark = position.view.mark_price
        params = self.config.params_for(key.symbol)
        trigger = self._trigger_price(key, mark)
        after, decision = core.on_mark(state, params, mark, self._clock(), trigger)
        self._commit(key, after)
        return decision

    def _commit(self, key: PositionKey, state: TrailState) -> None:
        if self._trails.get(key) != state:
            self._save(key, state)  # before anything is sent: a restart resumes from here
        self._trails[key] = state

    def _trigger_price(self, key: PositionKey, mark: Decimal) -> Decimal | None:
        fresh = self._fresh_trigger.pop(key, None)
        if fresh is not None:
            return fresh
        if self.config.sl_trigger_by == "MarkPrice" or self.trigger_prices is None:
            return mark
        return self.trigger_prices(key.symbol)

    async def _create(self, position: ManagedPosition) -> TrailState | None:
        view = position.view
        key = view.key
        if view.side is None or not view.entry_price:
            return None
        stored = self._stored.pop(key, None)
        if stored is not None and same_lifetime(stored, position):
            self.stats.resumed += 1
            log.info(
                "%s: resumed trail (%s, extreme %s, stop %s, unconfirmed until the exchange "
                "shows it)",
                key,
                stored.phase,
                stored.extreme_price,
                stored.wanted_stop,
            )
            return core.restored(stored)
        instrument = await self._instrument(key.symbol)
        if instrument is None:
            if key not in self._skipped:
                self._skipped.add(key)
                log.error("%s: no instrument info (tick size); not trailing it", key)
            return None
        return core.new_trail(
            view.side,
            view.entry_price,
            instrument.tick_size,
            view.mark_price,
            opened_at_ms=view.open_time_ms,
        )

    async def try_load_instruments(self) -> bool:
        """Loads instruments unless a failed load was too recent; False (logged) if it fails.

        A failure never stops protection: a position whose tick size is unknown waits, and the
        next event after `INSTRUMENTS_RETRY_S` tries again (never one REST call per mark).
        """
        now_s = self._clock()
        if self._instruments_retry_at_s is not None and now_s < self._instruments_retry_at_s:
            return False
        try:
            await self.load_instruments()
        except BybitError as exc:
            self._instruments_retry_at_s = now_s + INSTRUMENTS_RETRY_S
            log.warning("could not load instruments (retry in %g s): %s", INSTRUMENTS_RETRY_S, exc)
            return False
        self._instruments_retry_at_s = None
        return True

    async def _instrument(self, symbol: str) -> Instrument | None:
        if symbol not in self._instruments:
            await self.try_load_instruments()  # a symbol listed after start-up, or a failed load
        return self._instruments.get(symbol)

    # --- decisions -------------------------------------------------------------------------

    def _act(self, key: PositionKey, decision: core.Decision) -> None:
        if isinstance(decision, Hold):
            self.stats.decisions[f"hold_{decision.reason}"] += 1
            return
        kind = "move" if isinstance(decision, MoveStop) else "close"
        self.stats.decisions[kind] += 1
        if self.config.monitor_only.applies(key.symbol):
            self.stats.monitor_only += 1
            log.info("%s: monitor-only, not sending: %s", key, decision)
            return
        self._kick(key, urgent=isinstance(decision, CloseNow))

    def _kick(self, key: PositionKey, *, urgent: bool) -> None:
        worker = self._tasks.get(key)
        if worker is None or worker.done():
            self._wake[key] = asyncio.Event()
            self._tasks[key] = asyncio.create_task(self._work(key), name=f"trailing-{key}")
        elif urgent:
            self._wake[key].set()  # a close cuts a stop's backoff short

    async def _work(self, key: PositionKey) -> None:
        failures = 0
        try:
            while (decision := self._decide(key)) is not None:
                if isinstance(decision, Hold) or self.config.monitor_only.applies(key.symbol):
                    return
                if isinstance(decision, CloseNow):
                    await self._close(key, decision)
                    return
                wait_s = await self._send_stop(key, decision.stop_price, failures)
                if wait_s is None:
                    failures = 0
                    continue
                failures += 1
                await self._backoff(key, wait_s)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s: trailing worker failed", key)
            self.stats.failures += 1

    async def _backoff(self, key: PositionKey, wait_s: float) -> None:
        """Waits out a retry delay; a close decision cuts it short."""
        with contextlib.suppress(_SupersededError):
            await self._unless_closing(key, self._sleep(wait_s))

    async def _send_stop(self, key: PositionKey, stop: Decimal, failures: int) -> float | None:
        """One attempt; None when it settled something (re-decide now), else seconds to wait."""
        cause_at_s = self._cause_at_s.get(key, time.perf_counter())
        self.sends.append(SendRecord(key, str(stop), cause_at_s, time.perf_counter()))
        try:
            changed = await self._unless_closing(key, self._exchange.set_stop(key, stop))
        except BybitError as exc:
            return await self._send_failed(key, stop, exc, failures)
        except _SupersededError:
            log.warning("%s: stop %s abandoned in flight: the position must close now", key, stop)
            return None
        state = self._trails.get(key)
        if state is not None:
            self._commit(key, core.confirmed(state, stop, self._clock()))
        self.stats.stops_sent += changed
        self.stats.not_modified += not changed
        log.info("%s: stop moved to %s%s", key, stop, "" if changed else " (already set)")
        return None

    async def _unless_closing(self, key: PositionKey, call: Awaitable[_T]) -> _T:
        """Awaits `call`, unless a close decision arrives first: neither a hung trading-stop
        request nor a retry delay may hold the market close back. Then the call is cancelled
        (the exchange may still apply a stop: on a position being closed that is harmless)."""
        wake = self._wake.setdefault(key, asyncio.Event())
        wake.clear()
        sending = asyncio.ensure_future(call)
        waking = asyncio.ensure_future(wake.wait())
        try:
            await asyncio.wait((sending, waking), return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            sending.cancel()  # the worker itself is cancelled: its request must not outlive it
            raise
        finally:
            waking.cancel()
        if not sending.done():
            sending.cancel()
            with contextlib.suppress(asyncio.CancelledError, BybitError):
                await sending
            raise _SupersededError
        return sending.result()

    async def _send_failed(
        self, key: PositionKey, stop: Decimal, exc: BybitError, failures: int
    ) -> float | None:
        if is_wrong_side(exc):
            await self._wrong_side(key, stop, exc)
            return None
        if is_position_gone(exc) and await self._confirmed_flat(key):
            return None
        delay_s = self._retry.delay_s(exc, failures, self._exchange.server_now_ms())
        self.stats.retries += 1
        level = logging.WARNING if failures < self._retry.max_retries else logging.ERROR
        log.log(level, "%s: stop %s not confirmed, retry in %.2fs: %s", key, stop, delay_s, exc)
        return delay_s

    async def _wrong_side(self, key: PositionKey, stop: Decimal, exc: BybitError) -> None:
        """The exchange's trigger price is through `stop`: never resend it; decide afresh."""
        self.stats.wrong_side += 1
        state = self._trails.get(key)
        if state is not None:
            self._commit(key, core.rejected(state, stop))
        log.warning("%s: stop %s refused as on the wrong side: %s", key, stop, exc)
        try:
            fresh = await self._exchange.trigger_price(key.symbol)
        except BybitError as fetch_exc:
            log.warning("%s: no fresh price after a wrong-side reply: %s", key, fetch_exc)
            return
        if fresh is not None:
            self._fresh_trigger[key] = fresh

    async def _confirmed_flat(self, key: PositionKey) -> bool:
        """A "zero position" claim, checked against the position list before it is believed."""
        position = self._positions.get(key)
        side = None if position is None else position.view.side
        try:
            row = await self._exchange.open_row(key)
        except BybitError as exc:
            log.warning("%s: could not check a zero-position answer: %s", key, exc)
            return False
        if row is not None and row.side is side:
            self.stats.gone_refuted += 1
            log.warning("%s: exchange said zero position, but the position list shows it", key)
            return False
        self._gone_flat(key, "the exchange shows no such position")
        return True

    async def _close(self, key: PositionKey, decision: CloseNow) -> None:
        position = self._positions.get(key)
        if position is None or position.view.side is None:
            return
        log.warning(
            "%s: trigger price %s is through the stop %s; closing at market",
            key,
            decision.mark_price,
            decision.stop_price,
        )
        self._closing.add(key)
        try:
            await self._closer.close_until_flat(key, position.view.side)
        finally:
            self._closing.discard(key)
        self._gone_flat(key, "closed at market")

    def _count_order(self) -> None:
        self.stats.closes += 1

    def _count_failure(self) -> None:
        self.stats.close_failures += 1

    # --- forgetting ------------------------------------------------------------------------

    def _gone_flat(self, key: PositionKey, why: str) -> None:
        self.stats.gone += 1
        self._drop(key, why)
        self._gone.add(key)

    def _drop(self, key: PositionKey, why: str) -> None:
        state = self._trails.pop(key, None)
        self._positions.pop(key, None)
        self._stored.pop(key, None)
        self._seen_stop.pop(key, None)
        self._fresh_trigger.pop(key, None)
        self._skipped.discard(key)
        self._wake.pop(key, None)
        worker = self._tasks.pop(key, None)
        if worker is not None and worker is not asyncio.current_task():
            worker.cancel()
        if self._store is not None:
            self._store.delete_trail(key)
        if state is not None:
            log.info("%s: trail ended: %s", key, why)

    def _prune(self, open_keys: Iterable[PositionKey]) -> None:
        """After a reconcile: open keys are alive after all; trails of the others are dropped."""
        keep = set(open_keys)
        self._gone -= keep
        for key in [k for k in (*self._stored, *self._trails) if k not in keep]:
            self.stats.pruned += 1
            self._drop(key, "position no longer open on the exchange")

    def _save(self, key: PositionKey, state: TrailState) -> None:
        if self._store is not None:
            self._store.save_trail(key, state)
