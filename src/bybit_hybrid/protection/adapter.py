"""What both protection adapters share: the opening of `handle` and their per-position tasks.

A reconciliation prunes the positions no longer open, a close forgets its position, and every
other managed event is the adapter's own (`_on_position`). Each adapter runs at most one
exchange task per position; `idle()` and `stop()` cover them all.
"""

from __future__ import annotations

import abc
import asyncio

from bybit_hybrid.protection.position_manager import (
    ManagedEvent,
    ManagedKind,
    ReconciledPositions,
)
from bybit_hybrid.protocol.domain import PositionKey
from bybit_hybrid.tasks import cancel_and_wait


class ManagedAdapter(abc.ABC):
    """A consumer of `PositionManager`'s managed events with one task per position at most."""

    _tasks: dict[PositionKey, asyncio.Task[None]]

    def idle(self) -> bool:
        """No exchange call in flight or waiting to be retried."""
        return all(task.done() for task in self._tasks.values())

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks.values())
        self._tasks.clear()

    async def handle(
        self, data: ManagedEvent | ReconciledPositions, received_at_s: float = 0.0
    ) -> None:
        """One managed event (from `UnifiedProtection`'s router consumer); `received_at_s` is
        `time.perf_counter()` when the router received the raw event (reaction-time records)."""
        if isinstance(data, ReconciledPositions):
            self._reconciled(data.open_keys)
        elif data.kind is ManagedKind.CLOSED:
            self._closed(data.position.key)
        else:
            await self._on_position(data, received_at_s)

    @abc.abstractmethod
    def _reconciled(self, open_keys: frozenset[PositionKey]) -> None:
        """A REST reconciliation: `open_keys` are the positions still open."""

    @abc.abstractmethod
    def _closed(self, key: PositionKey) -> None:
        """The position was seen closed."""

    @abc.abstractmethod
    async def _on_position(self, event: ManagedEvent, received_at_s: float) -> None:
        """An open, a change or a mark of an open position."""
