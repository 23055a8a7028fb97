"""Which of two rows of one position key is newer, and when a row repeats what is known.

Per key (BYBIT_V5 §6.4): a higher `seq` wins; equal (or unknown) seq falls back to
`updatedTime`, then to the push's `creationTime` when both rows came from the stream. After a
close on REST absence alone (issue 19 F1) a push with the last row's stamps is a replay, a REST
listing with them re-opens the key, and a push created before the closing answer is older news.
`PositionBook` (protocol/positions.py) applies these rules; they live here so the book's module
holds the book.
"""

from __future__ import annotations

from dataclasses import dataclass

from bybit_hybrid.protocol.domain import PositionSnapshot, Source
from bybit_hybrid.protocol.events import PositionView

# Fields whose change is worth an event; everything else in a push (mark, PnL, margins) is
# either recomputed here or of no interest to consumers.
WATCHED_FIELDS = frozenset(
    {
        "side",
        "size",
        "entry_price",
        "stop_loss",
        "take_profit",
        "trailing_stop",
        "leverage",
        "position_status",
        "liq_price",
        # A position's age counts from it; consumers (the aged monitor) must see it change.
        "open_time_ms",
    }
)


@dataclass(slots=True)
class Slot:
    """Per-key ordering state; outlives a close so a late, older push cannot reopen it.

    `inferred`: closed on REST absence, with no row of its own (see `replayed`); then
    `closed_ts_ms` is that answer's exchange time, and a push created before it is older news
    than the close (campaign seed 62: a delayed push re-opened a key REST had closed). `missed_at`:
    when a complete answer first missed this open key, until confirmed or withdrawn."""

    last: PositionSnapshot
    received_at: float
    inferred: bool = False
    missed_at: float | None = None
    closed_ts_ms: int | None = None  # exchange time of the answer that closed it on absence


def compare_rows(new: PositionSnapshot, old: PositionSnapshot) -> int:
    """+1 if `new` is newer, -1 if older, 0 if the stamps cannot tell them apart."""
    stamps: list[tuple[int | None, int | None]] = [
        (new.seq, old.seq),
        (new.updated_time_ms, old.updated_time_ms),
    ]
    if new.source is Source.POSITION and old.source is Source.POSITION:
        # creationTime is the push's own time; a REST row's ts is the response time instead.
        stamps.append((new.exchange_ts_ms, old.exchange_ts_ms))
    for mine, theirs in stamps:
        if mine is not None and theirs is not None and mine != theirs:
            return 1 if mine > theirs else -1
    return 0


def older_than_inferred_close(slot: Slot, snapshot: PositionSnapshot) -> bool:
    """A push created before the answer that closed the key on absence: older news."""
    closed, created = slot.closed_ts_ms, snapshot.exchange_ts_ms
    if not slot.inferred or snapshot.source is Source.REST:
        return False
    return closed is not None and created is not None and created < closed


def replayed(slot: Slot, snapshot: PositionSnapshot, requested_at: float | None) -> bool:
    """After a close on absence alone, a push with the last row's stamps repeats what is known
    to be gone; a REST row with them is a listing showing the key open (issue 19 F1), unless
    its request was sent before the close was decided (it is the evidence already weighed)."""
    if not slot.inferred:
        return False
    if snapshot.source is not Source.REST:
        return True
    return requested_at is not None and requested_at < slot.received_at


def watched_diff(previous: PositionView | None, snapshot: PositionSnapshot) -> frozenset[str]:
    """The watched fields that differ; a flat row against a flat key differs in nothing."""
    if previous is None:
        return WATCHED_FIELDS if snapshot.is_open else frozenset()
    return frozenset(
        name for name in WATCHED_FIELDS if getattr(previous, name) != getattr(snapshot, name)
    )


def known_seq(seq: int | None) -> int | None:
    # -1 means "never traded": no seq to report.
    return seq if seq is not None and seq >= 0 else None


def reopened(previous: PositionView, snapshot: PositionSnapshot) -> bool:
    """True when the exchange's openTime moved forward: the old position ended in between."""
    before, after = previous.open_time_ms, snapshot.open_time_ms
    return before is not None and after is not None and after > before
