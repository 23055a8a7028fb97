"""A consumer's mailbox: lifecycle events FIFO and never dropped, marks conflated per key.

A slow consumer must never lose an open or a close, and must not drown in stale marks: a
mark waiting in the box is overwritten in place by a newer mark for the same position, so it
keeps its place in line. A lifecycle event "seals" that slot, so a later mark queues behind
the lifecycle event and never overtakes it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

E = TypeVar("E")


@dataclass(slots=True)
class _Slot(Generic[E]):
    event: E
    key: Hashable = None  # set for mark slots, so delivery can unregister in O(1)


@dataclass(slots=True)
class MailboxStats:
    lifecycle_in: int = 0
    marks_in: int = 0
    marks_conflated: int = 0
    delivered: int = 0
    max_backlog: int = 0


@dataclass
class Mailbox(Generic[E]):
    """Single-consumer queue with per-key conflation for mark events; its `Dispatcher` takes
    events out with `get_nowait` (no waiting here: the dispatcher runs when something is put)."""

    _queue: deque[_Slot[E]] = field(default_factory=deque)
    _open_mark_slots: dict[Hashable, _Slot[E]] = field(default_factory=dict)
    stats: MailboxStats = field(default_factory=MailboxStats)

    def __len__(self) -> int:
        return len(self._queue)

    def put_lifecycle(self, key: Hashable, event: E) -> None:
        self._open_mark_slots.pop(key, None)
        self._push(_Slot(event))
        self.stats.lifecycle_in += 1

    def put_mark(self, key: Hashable, event: E) -> None:
        self.stats.marks_in += 1
        slot = self._open_mark_slots.get(key)
        if slot is not None:
            slot.event = event
            self.stats.marks_conflated += 1
            return
        slot = _Slot(event, key)
        self._open_mark_slots[key] = slot
        self._push(slot)

    def _push(self, slot: _Slot[E]) -> None:
        self._queue.append(slot)
        self.stats.max_backlog = max(self.stats.max_backlog, len(self._queue))

    def get_nowait(self) -> E | None:
        if not self._queue:
            return None
        slot = self._queue.popleft()
        if slot.key is not None and self._open_mark_slots.get(slot.key) is slot:
            del self._open_mark_slots[slot.key]
        self.stats.delivered += 1
        return slot.event
