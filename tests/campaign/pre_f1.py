"""The pre-F1 book as a mutation, to show the failover campaign catches what F1 fixed.

Issue 19 F1: a close inferred from one lagging `position/list` answer hid a live position for
good. The old book closed every open key a complete listing missed at once and marked the key
strict, so a later row with the same seq/updatedTime was dropped as stale and REST could never
bring it back. `pre_f1_book()` puts those two rules back into `PositionBook` for the duration of
a `with` block (the rest of the book is today's); `bench/failover_campaign.py --pre-f1` runs the
campaign under it and must find hidden positions, `tests/integration/test_failover_campaign.py`
checks that it does.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from bybit_hybrid.protocol import positions
from bybit_hybrid.protocol.domain import PositionKey, PositionSnapshot
from bybit_hybrid.protocol.events import PositionEvent
from bybit_hybrid.protocol.row_order import Slot


def _missing_closes_at_once(
    self: positions.PositionBook,
    key: PositionKey,
    now: float,
    requested_at: float | None,
    response_ts_ms: int | None,
) -> list[PositionEvent]:
    """Old rule: one complete answer without the key closes it (unless the stream updated it
    after the request was sent)."""
    slot = self._slots[key]
    if requested_at is not None and slot.received_at >= requested_at:
        self.stats.reconcile_closes_skipped += 1
        return []
    return self._close_inferred(key, now, response_ts_ms)


def _strict(slot: Slot, snapshot: PositionSnapshot, requested_at: float | None) -> bool:
    """Old rule: after a close on absence every row with the last stamps is stale, REST too."""
    return slot.inferred


@contextlib.contextmanager
def pre_f1_book() -> Iterator[None]:
    """Today's `PositionBook` with F1's two old rules, inside the block only."""
    saved_missing = positions.PositionBook._missing
    saved_replayed = getattr(positions, "replayed")  # noqa: B009 - the book's own binding
    setattr(positions.PositionBook, "_missing", _missing_closes_at_once)  # noqa: B010
    setattr(positions, "replayed", _strict)  # noqa: B010
    try:
        yield
    finally:
        setattr(positions.PositionBook, "_missing", saved_missing)  # noqa: B010
        setattr(positions, "replayed", saved_replayed)  # noqa: B010
