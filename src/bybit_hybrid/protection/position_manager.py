"""Position manager: the authoritative position view (price, PnL, age) that protection acts on.

A pure transform, not a consumer of its own: `UnifiedProtection`'s one router consumer passes
each raw position event through `transform`, which turns it into a `ManagedEvent` carrying a
`ManagedPosition` (the stream's view plus when the position opened: the exchange's `openTime`
when it has one, else when this process first saw it), and hands that to trailing and aged in
the same step. One router hop from mark to stop: no re-emit, no second mailbox or task.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Final

from bybit_hybrid.protection.prices import HUNDRED
from bybit_hybrid.protocol.domain import PositionKey, Side
from bybit_hybrid.protocol.events import PositionChanged, PositionEvent, PositionView
from bybit_hybrid.protocol.hybrid import Reconciled
from bybit_hybrid.router.router import ROUTER_EVENTS

RAW_EVENTS: Final = ROUTER_EVENTS  # every class the router carries


class ManagedKind(StrEnum):
    OPENED = "opened"
    CHANGED = "changed"
    MARK = "mark"
    CLOSED = "closed"


class AgeSource(StrEnum):
    EXCHANGE = "exchange"  # the position's openTime
    FIRST_SEEN = "first_seen"  # openTime absent (0): when this process first saw it


@dataclass(frozen=True, slots=True)
class ManagedPosition:
    view: PositionView
    opened_at_ms: int
    age_source: AgeSource

    @property
    def key(self) -> PositionKey:
        return self.view.key

    @property
    def side(self) -> Side | None:
        return self.view.side

    def age_ms(self, now_ms: int) -> int:
        return now_ms - self.opened_at_ms

    @property
    def pnl(self) -> Decimal | None:
        return self.view.unrealised_pnl

    @property
    def pnl_pct(self) -> Decimal | None:
        """Price move in the position's favour, percent of entry (leverage not applied)."""
        view = self.view
        if view.side is None or view.entry_price is None or view.mark_price is None:
            return None
        if not view.entry_price:
            return None
        return view.side.sign * (view.mark_price - view.entry_price) / view.entry_price * HUNDRED


@dataclass(frozen=True, slots=True)
class ManagedEvent:
    kind: ManagedKind
    position: ManagedPosition
    changed: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class ReconciledPositions:
    """After a REST reconcile: the keys open right now (stored state of others is stale)."""

    open_keys: frozenset[PositionKey]


class PositionManager:
    """Keeps one ManagedPosition per open key; `transform` is called once per raw event."""

    def __init__(self, clock_ms: Callable[[], int] | None = None) -> None:
        self._clock_ms = clock_ms or (lambda: time.time_ns() // 1_000_000)
        self._positions: dict[PositionKey, ManagedPosition] = {}
        self._first_seen_ms: dict[PositionKey, int] = {}

    def positions(self) -> list[ManagedPosition]:
        return sorted(self._positions.values(), key=lambda p: p.key)

    def get(self, key: PositionKey) -> ManagedPosition | None:
        return self._positions.get(key)

    def transform(self, data: PositionEvent | Reconciled) -> ManagedEvent | ReconciledPositions:
        """A raw router event as protection sees it (and the manager's book updated)."""
        if isinstance(data, Reconciled):
            return ReconciledPositions(frozenset(self._positions))
        kind = ManagedKind(data.kind)
        managed = self._update(kind, data.view)
        changed = data.changed if isinstance(data, PositionChanged) else frozenset()
        return ManagedEvent(kind, managed, changed)

    def _update(self, kind: ManagedKind, view: PositionView) -> ManagedPosition:
        key = view.key
        if kind is ManagedKind.OPENED:
            # A flip closes the old side and opens a new one: its age starts again.
            self._first_seen_ms[key] = self._clock_ms()
        first_seen_ms = self._first_seen_ms.setdefault(key, self._clock_ms())
        if view.open_time_ms:
            managed = ManagedPosition(view, view.open_time_ms, AgeSource.EXCHANGE)
        else:
            managed = ManagedPosition(view, first_seen_ms, AgeSource.FIRST_SEEN)
        if kind is ManagedKind.CLOSED:
            self._positions.pop(key, None)
            self._first_seen_ms.pop(key, None)
        else:
            self._positions[key] = managed
        return managed
