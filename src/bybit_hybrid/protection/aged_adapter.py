"""Aged-position adapter: runs the pure aged core on every mark and closes aged positions.

A close is a verified exit (`closer.Closer`): before every reduce-only market order it asks the
position list for the exchange's size, and it repeats until the list shows the position flat, so
a partial fill or a size changed meanwhile leaves no remainder; failures back off. Only then is
the state CLOSED, and a position that shows up open again (a size change, a reconcile) re-arms.
The CLOSING phase is persisted before any call, so a crash mid-close is decided afresh. Adds move
the entry (the average) and with it every target.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Final

from bybit_hybrid.protection import aged as core
from bybit_hybrid.protection.adapter import ManagedAdapter
from bybit_hybrid.protection.aged import AgedClose, AgedPhase, AgedState
from bybit_hybrid.protection.closer import Closer
from bybit_hybrid.protection.config import AgedConfig
from bybit_hybrid.protection.gateway import ProtectionGateway
from bybit_hybrid.protection.position_manager import (
    AgeSource,
    ManagedEvent,
    ManagedKind,
    ManagedPosition,
)
from bybit_hybrid.protection.retry import RetryPolicy
from bybit_hybrid.protection.store import ProtectionStore
from bybit_hybrid.protocol.domain import PositionKey

log = logging.getLogger(__name__)

HANDLER_NAME: Final = "aged"


@dataclass
class AgedStats:
    closes: int = 0
    already_gone: int = 0
    close_failures: int = 0
    monitor_only: int = 0
    held_existing: int = 0  # closes not sent: past the limit when first seen, no opt-in
    phase_changes: int = 0
    pruned: int = 0


class AgedAdapter(ManagedAdapter):
    """The aged-position consumer; `trailing_active(key)` says whether a trail owns the exit."""

    def __init__(
        self,
        config: AgedConfig,
        exchange: ProtectionGateway,
        store: ProtectionStore | None,
        trailing_active: Callable[[PositionKey], bool],
        *,
        retry: RetryPolicy | None = None,
        clock_ms: Callable[[], int] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.config = config
        self._exchange = exchange
        self._store = store
        self._trailing_active = trailing_active
        self._retry = retry or RetryPolicy()
        self._clock_ms = clock_ms or (lambda: time.time_ns() // 1_000_000)
        self._sleep = sleep
        self._closer = Closer(
            exchange, self._retry, sleep, on_order=self._count_order, on_failure=self._count_failure
        )
        self._stored: dict[PositionKey, AgedState] = store.load_aged() if store else {}
        # Past the limit when first seen (a first run on an old account): watched, not closed.
        self._held: set[PositionKey] = store.load_aged_held() if store else set()
        self._first_seen_ms: dict[PositionKey, int] = {}  # created here, not resumed
        self._states: dict[PositionKey, AgedState] = {}
        self._reported: set[tuple[PositionKey, AgedPhase]] = set()
        self._tasks: dict[PositionKey, asyncio.Task[None]] = {}
        self.stats = AgedStats()

    def state(self, key: PositionKey) -> AgedState | None:
        return self._states.get(key)

    def states(self) -> dict[PositionKey, AgedState]:
        return dict(self._states)

    def held(self, key: PositionKey) -> bool:
        """Only watched: it was past the aged limit when first seen (`aged_close_existing`)."""
        return key in self._held

    # --- events (`adapter.ManagedAdapter.handle` opens them) --------------------------------

    def _reconciled(self, open_keys: frozenset[PositionKey]) -> None:
        self._prune(open_keys)
        self._rearm(open_keys)

    def _closed(self, key: PositionKey) -> None:
        self._forget(key)

    async def _on_position(self, event: ManagedEvent, received_at_s: float) -> None:
        key = event.position.key
        state = self._states.get(key)
        if state is not None and _other_lifetime(state, event):
            self._forget(key)
            state = None
        state = state or self._create(event.position)
        if state is None:
            return
        state = self._with_age(state, event.position)
        if event.kind is not ManagedKind.MARK:
            state = self._lifecycle(state, event)
        self._step(key, state, event.position)

    def _lifecycle(self, state: AgedState, event: ManagedEvent) -> AgedState:
        """An add moves the entry; a size change of a position believed flat re-arms it."""
        view = event.position.view
        if view.entry_price and view.entry_price != state.entry_price:
            state = core.rebase_entry(state, view.entry_price)
        if "size" in event.changed and state.phase is AgedPhase.CLOSED:
            state = core.rearm(state, self.config.params, self._clock_ms())
        return state

    def _step(self, key: PositionKey, state: AgedState, position: ManagedPosition) -> None:
        before = self._states.get(key)
        mark = position.view.mark_price
        now_ms = self._clock_ms()
        decision: core.AgedDecision | None = None
        if mark is not None:
            active = self._trailing_active(key)
            state, decision = core.on_mark(state, self.config.params, mark, now_ms, active)
            if isinstance(decision, AgedClose) and self._only_watched(key):
                state = core.close_failed(state, self.config.params, now_ms)
                self._report_monitor_only(key, decision)
                decision = None
        self._states[key] = state
        if state != before:
            self._save(key, state, before)  # CLOSING is on disk before any call goes out
        if isinstance(decision, AgedClose):
            self._tasks[key] = asyncio.create_task(
                self._close(key, decision, position), name=f"aged-close-{key}"
            )

    def _create(self, position: ManagedPosition) -> AgedState | None:
        view = position.view
        if view.side is None or not view.entry_price:
            return None
        stored = self._stored.pop(position.key, None)
        if stored is None or not _same_lifetime(stored, position):
            self._release(position.key)  # a new lifetime is judged afresh
        if stored is not None and _same_lifetime(stored, position):
            resumed = core.resumed(stored, self.config.params, self._clock_ms())
            if view.entry_price != stored.entry_price:
                resumed = core.rebase_entry(resumed, view.entry_price)  # added while away
            return resumed
        now_ms = self._clock_ms()
        if position.age_source is not AgeSource.EXCHANGE:  # its true age may come later
            self._first_seen_ms[position.key] = now_ms
        self._hold_if_old(position, now_ms)
        return AgedState(view.side, view.entry_price, position.opened_at_ms)

    def _hold_if_old(self, position: ManagedPosition, seen_at_ms: int) -> None:
        """A position this state has never seen that is already past the limit is not closed
        without the opt-in: a first run must not market-close an account's old positions."""
        if self.config.close_existing or position.key in self._held:
            return
        if position.age_ms(seen_at_ms) < self.config.params.max_age_ms:
            return
        self._held.add(position.key)
        if self._store is not None:
            self._store.hold_aged(position.key)
        log.warning(
            "%s: already past the aged limit (%.1f h) when first seen: monitored only, not "
            "closed (set aged_close_existing=true to let the aged monitor close it)",
            position.key,
            self.config.params.max_age_ms / core.MS_PER_HOUR,
        )

    def _only_watched(self, key: PositionKey) -> bool:
        return self.config.monitor_only.applies(key.symbol) or key in self._held

    def _with_age(self, state: AgedState, position: ManagedPosition) -> AgedState:
        """The exchange's openTime wins; a first-seen time never makes a resumed state younger."""
        exchange_time = position.age_source is AgeSource.EXCHANGE
        if exchange_time and position.opened_at_ms != state.opened_at_ms:
            seen_at_ms = self._first_seen_ms.pop(position.key, None)
            if seen_at_ms is not None:  # first seen without its age: judged by its true one
                self._hold_if_old(position, seen_at_ms)
            return core.with_open_time(state, position.opened_at_ms)
        return state

    # --- closing ---------------------------------------------------------------------------

    async def _close(
        self, key: PositionKey, decision: AgedClose, position: ManagedPosition
    ) -> None:
        side = position.view.side
        if side is None:
            return
        result = await self._closer.close_until_flat(key, side)
        if result.orders == 0:
            self.stats.already_gone += 1
            self._mark_closed(key, "already flat on the exchange; no order sent")
            return
        self._mark_closed(
            key,
            f"closed at market (order {result.order_id}) in {decision.phase}: mark "
            f"{decision.mark_price} reached target {decision.target_price:.8f} "
            f"(accepted loss {decision.accepted_loss_pct:.4f} %)",
        )

    def _mark_closed(self, key: PositionKey, why: str) -> None:
        state = self._states.get(key)
        if state is not None:
            self._states[key] = closed = core.closed(state)
            self._save(key, closed, state)
        log.warning("%s: aged position %s", key, why)

    def _rearm(self, open_keys: Iterable[PositionKey]) -> None:
        """Believed flat, yet open in the book just reconciled with REST: watch it again."""
        now_ms = self._clock_ms()
        for key in open_keys:
            state = self._states.get(key)
            if state is not None and state.phase is AgedPhase.CLOSED:
                self._states[key] = rearmed = core.rearm(state, self.config.params, now_ms)
                self._save(key, rearmed, state)

    def _report_monitor_only(self, key: PositionKey, decision: AgedClose) -> None:
        held = key in self._held and not self.config.monitor_only.applies(key.symbol)
        if held:
            self.stats.held_existing += 1
        else:
            self.stats.monitor_only += 1
        if (key, decision.phase) not in self._reported:
            self._reported.add((key, decision.phase))
            why = (
                "past the limit when first seen, aged_close_existing=false"
                if held
                else "monitor-only"
            )
            log.info("%s: %s, not closing: %s", key, why, decision)

    def _count_order(self) -> None:
        self.stats.closes += 1

    def _count_failure(self) -> None:
        self.stats.close_failures += 1

    # --- forgetting ------------------------------------------------------------------------

    def _release(self, key: PositionKey) -> None:
        if key in self._held:
            self._held.discard(key)
            if self._store is not None:
                self._store.release_aged(key)

    def _forget(self, key: PositionKey) -> None:
        self._held.discard(key)
        self._first_seen_ms.pop(key, None)
        self._states.pop(key, None)
        self._stored.pop(key, None)
        task = self._tasks.pop(key, None)
        if task is not None and not task.done():
            task.cancel()
        if self._store is not None:
            self._store.delete_aged(key)

    def _prune(self, open_keys: Iterable[PositionKey]) -> None:
        keep = set(open_keys)
        for key in [k for k in (*self._stored, *self._states) if k not in keep]:
            self.stats.pruned += 1
            self._forget(key)

    def _save(self, key: PositionKey, state: AgedState, before: AgedState | None) -> None:
        if before is not None and before.phase is not state.phase:
            self.stats.phase_changes += 1
            log.info("%s: aged phase %s -> %s", key, before.phase, state.phase)
        if self._store is not None:
            self._store.save_aged(key, state)


def _same_lifetime(stored: AgedState, position: ManagedPosition) -> bool:
    """Same side, and the same exchange openTime when there is one (else the same entry)."""
    if stored.side is not position.view.side:
        return False
    if position.age_source is AgeSource.EXCHANGE:
        return stored.opened_at_ms == position.opened_at_ms
    return stored.entry_price == position.view.entry_price


def _other_lifetime(state: AgedState, event: ManagedEvent) -> bool:
    """A live state seeing an open or the other side: the position was replaced meanwhile."""
    side = event.position.view.side
    return event.kind is ManagedKind.OPENED or (side is not None and side is not state.side)
