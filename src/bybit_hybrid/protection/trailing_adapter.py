"""Trailing-stop adapter: feeds managed positions to the pure core and executes its decisions.

Per position it keeps the trail state (persisted before any exchange call), the latest view and
at most one worker task. A worker sends the newest wanted stop, re-checking it against the
latest mark first; a failed send is retried with backoff, and a newer stop decided meanwhile
replaces the one being retried. 34040 counts as success; 10001 "zero position" ends the trail.
Workers of different positions run concurrently, all behind the account's shared limiter.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Final

from bybit_hybrid.protection import trailing as core
from bybit_hybrid.protection.config import TrailingConfig
from bybit_hybrid.protection.exchange import ProtectionExchange
from bybit_hybrid.protection.position_manager import (
    MANAGED_MARK,
    MANAGED_POSITION,
    MANAGED_RECONCILED,
    ManagedEvent,
    ManagedKind,
    ManagedPosition,
    ReconciledPositions,
)
from bybit_hybrid.protection.prices import has_crossed
from bybit_hybrid.protection.retry import RetryPolicy, is_position_gone
from bybit_hybrid.protection.store import ProtectionStore
from bybit_hybrid.protection.trailing import CloseNow, Hold, MoveStop, TrailState
from bybit_hybrid.protocol.domain import Instrument, PositionKey
from bybit_hybrid.router.router import EventRouter, RoutedEvent
from bybit_hybrid.tasks import cancel_and_wait
from bybit_hybrid.transport.errors import BybitError

log = logging.getLogger(__name__)

HANDLER_NAME: Final = "trailing"
_SEND_RECORDS: Final = 10_000


@dataclass(frozen=True, slots=True)
class SendRecord:
    """One trading-stop request about to leave: for the reaction-time benchmark and status.

    Times are `time.perf_counter()`: `cause_at_s` when the router received the mark that
    produced the decision, `sent_at_s` just before the REST call.
    """

    key: PositionKey
    stop_price: str
    cause_at_s: float
    sent_at_s: float


@dataclass(frozen=True, slots=True)
class _Job:
    decision: MoveStop | CloseNow
    cause_at_s: float


@dataclass
class TrailingStats:
    decisions: Counter[str] = field(default_factory=Counter)
    stops_sent: int = 0
    not_modified: int = 0
    retries: int = 0
    failures: int = 0
    gone: int = 0
    closes: int = 0
    close_failures: int = 0
    adopted: int = 0
    monitor_only: int = 0
    resumed: int = 0
    pruned: int = 0


class TrailingAdapter:
    """The trailing-stop consumer; `register(router)` subscribes it to managed events."""

    def __init__(
        self,
        config: TrailingConfig,
        exchange: ProtectionExchange,
        store: ProtectionStore | None = None,
        *,
        instruments: Mapping[str, Instrument] | None = None,
        retry: RetryPolicy | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.config = config
        self._exchange = exchange
        self._store = store
        self._instruments: dict[str, Instrument] = dict(instruments or {})
        self._retry = retry or RetryPolicy()
        self._clock = clock
        self._sleep = sleep
        self._stored: dict[PositionKey, TrailState] = store.load_trails() if store else {}
        self._trails: dict[PositionKey, TrailState] = {}
        self._positions: dict[PositionKey, ManagedPosition] = {}
        self._pending: dict[PositionKey, _Job] = {}
        self._workers: dict[PositionKey, asyncio.Task[None]] = {}
        self._closing: set[PositionKey] = set()
        self._skipped: set[PositionKey] = set()
        # The exchange answered "zero position" but the stream has not reported the close yet:
        # marks for these keys must not start a fresh trail (and another doomed stop) each.
        self._gone: set[PositionKey] = set()
        self.sends: deque[SendRecord] = deque(maxlen=_SEND_RECORDS)
        self.stats = TrailingStats()

    # --- wiring and queries ----------------------------------------------------------------

    def register(self, router: EventRouter) -> None:
        for event in (MANAGED_POSITION, MANAGED_MARK, MANAGED_RECONCILED):
            router.on(event, self.handle, name=HANDLER_NAME)

    async def load_instruments(self) -> None:
        self._instruments.update(await self._exchange.instruments())

    def is_active(self, key: PositionKey) -> bool:
        state = self._trails.get(key)
        return state is not None and state.is_active

    def trail(self, key: PositionKey) -> TrailState | None:
        return self._trails.get(key)

    def trails(self) -> dict[PositionKey, TrailState]:
        return dict(self._trails)

    def idle(self) -> bool:
        """No stop or close waiting or in flight."""
        return not self._pending and all(w.done() for w in self._workers.values())

    async def stop(self) -> None:
        await cancel_and_wait(self._workers.values())
        self._workers.clear()

    # --- events ----------------------------------------------------------------------------

    async def handle(self, routed: RoutedEvent) -> None:
        data = routed.data
        if isinstance(data, ReconciledPositions):
            self._prune(data.open_keys)
            return
        event: ManagedEvent = data
        key = event.position.key
        if event.kind is ManagedKind.CLOSED:
            self._gone.discard(key)
            self._drop(key, "position closed")
            return
        if key in self._gone:
            if event.kind is ManagedKind.MARK:
                return  # the exchange already said it is gone; wait for the stream's close
            self._gone.discard(key)  # opened or changed again: a live position after all
        self._positions[key] = event.position
        state = self._trails.get(key) or await self._create(event.position)
        if state is None:
            return
        self._step(key, state, event, routed.received_at_s)

    def _step(
        self, key: PositionKey, state: TrailState, event: ManagedEvent, cause_at_s: float
    ) -> None:
        view = event.position.view
        before = state
        rebased = event.kind is ManagedKind.CHANGED and "entry_price" in event.changed
        if rebased and view.entry_price:
            state = core.rebase_entry(state, view.entry_price)
        if event.kind is not ManagedKind.MARK:
            state = self._adopt(key, state, view.stop_loss)
        decision: core.Decision | None = None
        if view.mark_price is not None:
            params = self.config.params_for(key.symbol)
            state, decision = core.on_mark(state, params, view.mark_price, self._clock())
        self._trails[key] = state
        if state != before:
            self._save(key, state)  # before anything is sent: a restart resumes from here
        if decision is not None:
            self._act(key, decision, cause_at_s)

    def _adopt(self, key: PositionKey, state: TrailState, stop: Decimal | None) -> TrailState:
        if stop is None:
            return state
        adopted = core.adopt_exchange_stop(state, stop)
        if adopted is not state:
            self.stats.adopted += 1
            log.info("%s: adopted the tighter stop %s set on the exchange", key, stop)
        return adopted

    async def _create(self, position: ManagedPosition) -> TrailState | None:
        view = position.view
        key = view.key
        if view.side is None or not view.entry_price:
            return None
        stored = self._stored.pop(key, None)
        # Same side and entry: the same position. Anything else was closed and reopened while
        # we were away; its fresh trail still adopts whatever stop the exchange holds.
        if stored is not None and (stored.side, stored.entry_price) == (
            view.side,
            view.entry_price,
        ):
            self.stats.resumed += 1
            log.info(
                "%s: resumed trail (%s, extreme %s, stop %s)",
                key,
                stored.phase,
                stored.extreme_price,
                stored.stop_price,
            )
            return stored
        instrument = await self._instrument(key.symbol)
        if instrument is None:
            if key not in self._skipped:
                self._skipped.add(key)
                log.error("%s: no instrument info (tick size); not trailing it", key)
            return None
        return core.new_trail(
            view.side, view.entry_price, instrument.tick_size, view.mark_price, None
        )

    async def _instrument(self, symbol: str) -> Instrument | None:
        if symbol not in self._instruments:
            try:
                await self.load_instruments()  # a symbol listed after startup
            except BybitError as exc:
                log.warning("could not load instruments: %s", exc)
        return self._instruments.get(symbol)

    # --- decisions -------------------------------------------------------------------------

    def _act(self, key: PositionKey, decision: core.Decision, cause_at_s: float) -> None:
        if isinstance(decision, Hold):
            self.stats.decisions[f"hold_{decision.reason}"] += 1
            return
        kind = "move" if isinstance(decision, MoveStop) else "close"
        self.stats.decisions[kind] += 1
        if self.config.monitor_only.applies(key.symbol):
            self.stats.monitor_only += 1
            log.info("%s: monitor-only, not sending: %s", key, decision)
            return
        if isinstance(decision, CloseNow) and key in self._closing:
            return
        self._submit(key, _Job(decision, cause_at_s))

    def _submit(self, key: PositionKey, job: _Job) -> None:
        waiting = self._pending.get(key)
        if waiting is not None and isinstance(waiting.decision, CloseNow):
            return  # a close outranks any stop
        self._pending[key] = job
        worker = self._workers.get(key)
        if worker is None or worker.done():
            self._workers[key] = asyncio.create_task(self._work(key), name=f"trailing-{key}")

    async def _work(self, key: PositionKey) -> None:
        try:
            while (job := self._pending.pop(key, None)) is not None:
                if isinstance(job.decision, CloseNow):
                    await self._close(key, job.decision)
                else:
                    await self._send_stop(key, job)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s: trailing worker failed", key)
            self.stats.failures += 1

    async def _send_stop(self, key: PositionKey, job: _Job) -> None:
        retries = 0
        while True:
            state = self._trails.get(key)
            position = self._positions.get(key)
            if state is None or position is None:
                return  # closed meanwhile
            assert isinstance(job.decision, MoveStop)
            stop = job.decision.stop_price
            mark = position.view.mark_price
            if mark is not None and has_crossed(state.side, mark, stop):
                log.warning(
                    "%s: mark %s already crossed stop %s; closing at market", key, mark, stop
                )
                await self._close(key, CloseNow(stop, mark))
                return
            self.sends.append(SendRecord(key, str(stop), job.cause_at_s, time.perf_counter()))
            try:
                changed = await self._exchange.set_stop(key, stop)
            except BybitError as exc:
                if is_position_gone(exc):
                    self.stats.gone += 1
                    self._drop(key, "the exchange has no such position (10001 zero position)")
                    self._gone.add(key)
                    return
                delay_s = self._retry.delay_s(exc, retries)
                if delay_s is None:
                    self.stats.failures += 1
                    log.error("%s: giving up on stop %s: %s", key, stop, exc)
                    return
                retries += 1
                self.stats.retries += 1
                log.warning("%s: stop %s retry %d in %.2fs: %s", key, stop, retries, delay_s, exc)
                await self._sleep(delay_s)
                newer = self._pending.pop(key, None)
                if newer is not None:
                    if isinstance(newer.decision, CloseNow):
                        await self._close(key, newer.decision)
                        return
                    job = newer
                continue
            self.stats.stops_sent += changed
            self.stats.not_modified += not changed
            log.info("%s: stop moved to %s%s", key, stop, "" if changed else " (already set)")
            return

    async def _close(self, key: PositionKey, decision: CloseNow) -> None:
        position = self._positions.get(key)
        if position is None or position.view.side is None or key in self._closing:
            return
        self._closing.add(key)
        try:
            order_id = await self._exchange.close_at_market(
                key, position.view.side, position.view.size
            )
        except BybitError as exc:
            if is_position_gone(exc):
                self.stats.gone += 1
                self._drop(key, "nothing left to close")
                self._gone.add(key)
                return
            self.stats.close_failures += 1
            log.error("%s: market close failed: %s", key, exc)
            await self._sleep(self._retry.base_delay_s)  # a later mark decides again
            self._closing.discard(key)
            return
        self.stats.closes += 1
        log.warning(
            "%s: closed at market (order %s): mark %s crossed the stop %s",
            key,
            order_id,
            decision.mark_price,
            decision.stop_price,
        )

    # --- forgetting ------------------------------------------------------------------------

    def _drop(self, key: PositionKey, why: str) -> None:
        state = self._trails.pop(key, None)
        self._positions.pop(key, None)
        self._pending.pop(key, None)
        self._closing.discard(key)
        self._stored.pop(key, None)
        self._skipped.discard(key)
        worker = self._workers.pop(key, None)
        if worker is not None and worker is not asyncio.current_task():
            worker.cancel()
        if self._store is not None:
            self._store.delete_trail(key)
        if state is not None:
            log.info("%s: trail ended: %s", key, why)

    def _prune(self, open_keys: Iterable[PositionKey]) -> None:
        """After a reconcile: stored or live trails whose position is gone are dropped."""
        keep = set(open_keys)
        self._gone &= keep
        for key in [k for k in (*self._stored, *self._trails) if k not in keep]:
            self.stats.pruned += 1
            self._drop(key, "position no longer open on the exchange")

    def _save(self, key: PositionKey, state: TrailState) -> None:
        if self._store is not None:
            self._store.save_trail(key, state)
