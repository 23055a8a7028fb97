"""The live position book: ordered, de-duplicated pushes keyed by (symbol, positionIdx).

Ordering (BYBIT_V5 §6.4, the rules in `protocol/row_order.py`), per key: a higher `seq`
wins; equal (or unknown) seq falls back to `updatedTime`, then to the push's `creationTime`
when both rows came from the stream. A row that compares equal and changes nothing we care
about is one of the pushes Bybit sends on every order action (§8.11) and emits nothing.

A one-way flip (Buy → Sell on the same key without a flat push in between) is emitted as a
close of the old side followed by an open of the new one: consumers key trailing stops and
position age on a position's life, and a flip starts a new trade with a new entry.

A key missing from a complete REST listing is evidence, not proof (issue 19 F1):
`position/list` may lag (BYBIT_V5 §7.2), and a lagging answer leaves out a position opened
after the moment it shows. The book never closes on one answer. It asks for a confirmation
(`take_confirmations()`: a `position/list?symbol=` per symbol, whose flat rows carry stamps)
and closes when that answer shows the key flat with newer stamps or does not list it, or when a
second complete answer, sent after the first miss was known, misses it too. An answer showing an
older row (REST behind the book) withdraws the miss. A key closed on absence alone keeps its
last row: a push with the same stamps is a replay, but a REST listing showing it again is the
exchange saying it is open, and re-opens it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from decimal import Decimal
from typing import Final

import msgspec

from bybit_hybrid.protocol.domain import PositionKey, PositionSnapshot, Source
from bybit_hybrid.protocol.events import (
    MarkUpdated,
    PositionChanged,
    PositionClosed,
    PositionEvent,
    PositionOpened,
    PositionView,
    revalue,
    unrealised_pnl,
)
from bybit_hybrid.protocol.row_order import (
    WATCHED_FIELDS,
    Slot,
    compare_rows,
    known_seq,
    older_than_inferred_close,
    reopened,
    replayed,
    watched_diff,
)

__all__ = [
    "CONFIRM_SYMBOLS_MAX",
    "WATCHED_FIELDS",
    "BookStats",
    "MarkQuote",
    "PositionBook",
    "confirmation_requests",
]

_ZERO = Decimal(0)

# Up to this many symbols missed by one answer are confirmed one `position/list?symbol=` each
# (Bybit allows 50 position/list calls a second per UID, BYBIT_V5 §7.2); beyond it one complete
# re-listing confirms them all, so a mass close costs one call, not one per symbol.
CONFIRM_SYMBOLS_MAX: Final = 10


class MarkQuote(msgspec.Struct, frozen=True, gc=False):
    """The latest mark the book revalues with, and what it came from (a Struct: one is built
    per mark change, and its C constructor costs a sixth of a frozen dataclass's)."""

    mark_price: Decimal
    ts_ms: int | None
    cs: int | None
    source: Source


@dataclass(slots=True)
class BookStats:
    """Counters for metrics and `get_stats()`."""

    applied: int = 0
    stale_dropped: int = 0
    duplicates_dropped: int = 0
    flat_ignored: int = 0
    invalid_dropped: int = 0
    opens: int = 0
    changes: int = 0
    closes: int = 0
    flips: int = 0
    mark_updates: int = 0
    reconciles: int = 0
    reconcile_closes: int = 0
    reconcile_closes_skipped: int = 0
    # Keys a complete answer missed (a confirmation was asked), and misses an answer showing
    # REST behind the book withdrew.
    reconcile_misses: int = 0
    reconcile_misses_withdrawn: int = 0
    confirmations: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    def missing_rows(self) -> dict[str, int]:
        """For `get_stats()`: keys a listing missed (a confirmation was asked), misses withdrawn
        because REST was behind the book, and keys closed on absence alone."""
        return {
            "reconcile_misses": self.reconcile_misses,
            "reconcile_misses_withdrawn": self.reconcile_misses_withdrawn,
            "reconcile_closes": self.reconcile_closes,
        }


@dataclass(slots=True)
class _Indexes:
    views: dict[PositionKey, PositionView] = field(default_factory=dict)
    by_symbol: dict[str, set[PositionKey]] = field(default_factory=dict)


class PositionBook:
    """Open positions keyed by (symbol, positionIdx), valued at the latest known mark."""

    def __init__(self) -> None:
        self._slots: dict[PositionKey, Slot] = {}
        self._open = _Indexes()
        self._marks: dict[str, MarkQuote] = {}
        self.stats = BookStats()
        self._touched: dict[str, None] = {}  # symbols whose open keys changed, in order
        self._confirm: dict[str, None] = {}  # symbols whose missed keys want a confirmation

    # -- inputs ---------------------------------------------------------------------------

    def apply_position(
        self, snapshot: PositionSnapshot, now: float, *, requested_at: float | None = None
    ) -> list[PositionEvent]:
        """Applies one stream (or REST) row; returns the events it causes, often none.
        `requested_at` is when a REST row's request was sent."""
        if snapshot.size > _ZERO and snapshot.side is None:
            self.stats.invalid_dropped += 1  # a size without a side cannot be valued
            return []
        slot = self._slots.get(snapshot.key)
        order = compare_rows(snapshot, slot.last) if slot is not None else 1
        if slot is not None and (
            order < 0
            or (order == 0 and replayed(slot, snapshot, requested_at))
            or older_than_inferred_close(slot, snapshot)
        ):
            self.stats.stale_dropped += 1
            return []
        previous = self._open.views.get(snapshot.key)
        changed = watched_diff(previous, snapshot)
        self._slots[snapshot.key] = Slot(snapshot, now)
        if not changed:
            if previous is None:
                self.stats.flat_ignored += 1  # a close (or flat row) for a key not open here
            else:
                self.stats.duplicates_dropped += 1
            return []
        self.stats.applied += 1
        return self._transition(previous, snapshot, changed, now)

    def apply_mark(
        self,
        symbol: str,
        mark: Decimal,
        *,
        ts_ms: int | None,
        cs: int | None,
        now: float,
        source: Source = Source.TICKER,
    ) -> list[PositionEvent]:
        """Records the symbol's mark and revalues its open positions (both hedge sides)."""
        self._marks[symbol] = MarkQuote(mark, ts_ms, cs, source)
        keys = self._open.by_symbol.get(symbol)
        if not keys:
            return []
        views = self._open.views
        events: list[PositionEvent] = []
        for key in sorted(keys) if len(keys) > 1 else keys:
            view = views[key]
            if view.mark_price != mark:
                view = views[key] = revalue(view, mark, source, ts_ms, cs, received_at=now)
                events.append(MarkUpdated(view))
        self.stats.mark_updates += len(events)
        return events

    def forget_mark(self, symbol: str) -> None:
        """Drops a symbol's mark when its ticker is unsubscribed, so it cannot go stale here."""
        self._marks.pop(symbol, None)

    def reconcile(
        self,
        snapshots: Iterable[PositionSnapshot],
        now: float,
        *,
        complete: bool = True,
        requested_at: float | None = None,
        response_ts_ms: int | None = None,
    ) -> list[PositionEvent]:
        """Merges a REST `position/list` answer into the book.

        Rows go through the same ordering as stream pushes, so an older row cannot roll the
        book back. With `complete` (every settle coin, every page), open positions absent from
        the answer are missed (see the module docstring: a confirmation is asked, and a second
        answer sent at or after the first miss closes them), except those updated after
        `requested_at` (when the request was sent): the stream saw them later than the answer
        could have.
        """
        self.stats.reconciles += 1
        events: list[PositionEvent] = []
        listed: set[PositionKey] = set()
        for snapshot in snapshots:
            listed.add(snapshot.key)
            if response_ts_ms is None:
                response_ts_ms = snapshot.exchange_ts_ms
            events.extend(self.apply_position(snapshot, now, requested_at=requested_at))
        self._withdraw_misses(listed)
        if complete:
            for key in sorted(self._open.views.keys() - listed):
                events.extend(self._missing(key, now, requested_at, response_ts_ms))
        return events

    def confirm(
        self,
        symbol: str,
        snapshots: Iterable[PositionSnapshot],
        now: float,
        *,
        requested_at: float,
        response_ts_ms: int | None = None,
    ) -> list[PositionEvent]:
        """Merges a `position/list?symbol=` answer, the confirmation `take_confirmations`
        asked for. Its rows (flat ones included) go through the usual ordering, so a newer flat
        row closes a key; an older row shows REST behind the book and withdraws the miss; an
        open key of `symbol` the answer does not list at all is closed."""
        self.stats.confirmations += 1
        events: list[PositionEvent] = []
        listed: set[PositionKey] = set()
        for snapshot in snapshots:
            if snapshot.key.symbol != symbol:
                continue  # not what was asked: it cannot confirm anything here
            listed.add(snapshot.key)
            if response_ts_ms is None:
                response_ts_ms = snapshot.exchange_ts_ms
            events.extend(self.apply_position(snapshot, now, requested_at=requested_at))
        self._withdraw_misses(listed)
        for key in sorted(self._open.by_symbol.get(symbol, set()) - listed):
            if self._slots[key].received_at < requested_at:
                events.extend(self._close_inferred(key, now, response_ts_ms))
        return events

    def take_confirmations(self) -> list[str]:
        """Symbols whose keys a complete answer missed since the last call: the shell fetches
        `position/list?symbol=` for each and hands the answer to `confirm`."""
        if not self._confirm:
            return []
        symbols, self._confirm = list(self._confirm), {}
        return symbols

    # -- queries --------------------------------------------------------------------------

    def get(self, key: PositionKey) -> PositionView | None:
        return self._open.views.get(key)

    def views(self) -> list[PositionView]:
        return [self._open.views[key] for key in sorted(self._open.views)]

    def open_keys(self) -> list[PositionKey]:
        return sorted(self._open.views)

    def open_symbols(self) -> set[str]:
        return set(self._open.by_symbol)

    def take_touched_symbols(self) -> list[str]:
        """Symbols where a key opened or closed since the last call, in order: only their
        `refcount` can have changed, so demand is reconciled in O(changes), not O(book)."""
        if not self._touched:
            return []
        touched, self._touched = list(self._touched), {}
        return touched

    def refcount(self, symbol: str) -> int:
        """Open positions in `symbol` (two at most, in hedge mode)."""
        keys = self._open.by_symbol.get(symbol)
        return 0 if keys is None else len(keys)

    def symbol_refcounts(self) -> dict[str, int]:
        """Open positions per symbol: the ticker subscription demand."""
        return {symbol: len(keys) for symbol, keys in self._open.by_symbol.items()}

    def mark(self, symbol: str) -> MarkQuote | None:
        return self._marks.get(symbol)

    def __len__(self) -> int:
        return len(self._open.views)

    def __contains__(self, key: object) -> bool:
        return key in self._open.views

    # -- transitions ----------------------------------------------------------------------

    def _transition(
        self,
        previous: PositionView | None,
        snapshot: PositionSnapshot,
        changed: frozenset[str],
        now: float,
    ) -> list[PositionEvent]:
        if previous is None:
            return [self._open_position(snapshot, now)]
        if not snapshot.is_open:
            status = snapshot.position_status or previous.position_status
            return [self._close(previous, snapshot, status, now)]
        if snapshot.side != previous.side or reopened(previous, snapshot):
            # A flip, or a close and reopen Bybit squeezed into one push or one REST poll
            # (a new openTime): either way a new trade with a new entry.
            self.stats.flips += 1
            closed = self._close(previous, snapshot, previous.position_status, now)
            return [closed, self._open_position(snapshot, now)]
        view = self._view(snapshot, now)
        self._open.views[snapshot.key] = view
        self.stats.changes += 1
        return [PositionChanged(view, changed)]

    def _open_position(self, snapshot: PositionSnapshot, now: float) -> PositionOpened:
        view = self._view(snapshot, now)
        self._open.views[snapshot.key] = view
        self._open.by_symbol.setdefault(snapshot.key.symbol, set()).add(snapshot.key)
        self._touched[snapshot.key.symbol] = None
        self.stats.opens += 1
        return PositionOpened(view)

    def _close(
        self, previous: PositionView, cause: PositionSnapshot, status: str, now: float
    ) -> PositionClosed:
        """The last open view at size 0: side and entry stay so consumers know what ended."""
        quote = self._marks.get(previous.key.symbol)
        closed = msgspec.structs.replace(
            previous,
            size=_ZERO,
            mark_price=quote.mark_price if quote is not None else cause.mark_price,
            unrealised_pnl=_ZERO,
            position_status=status,
            status="closed",
            source=cause.source,
            exchange_ts_ms=cause.exchange_ts_ms,
            cs=None,
            seq=known_seq(cause.seq),
            received_at=now,
        )
        self._remove(previous.key)
        self.stats.closes += 1
        return PositionClosed(closed)

    def _missing(
        self, key: PositionKey, now: float, requested_at: float | None, response_ts_ms: int | None
    ) -> list[PositionEvent]:
        """An open key a complete answer left out: the first miss asks for a confirmation; a
        second answer sent at or after the first miss was known confirms it."""
        slot = self._slots[key]
        if requested_at is not None and slot.received_at >= requested_at:
            self.stats.reconcile_closes_skipped += 1
            return []
        if slot.missed_at is not None and requested_at is not None:
            if requested_at >= slot.missed_at:
                return self._close_inferred(key, now, response_ts_ms)
            return []  # an answer sent before the first miss: the same evidence again
        if slot.missed_at is None:
            slot.missed_at = now
            self.stats.reconcile_misses += 1
            self._confirm[key.symbol] = None
        return []

    def _withdraw_misses(self, listed: Iterable[PositionKey]) -> None:
        """A listed key still marked missed got a row older than the book's (an applied row
        starts a fresh slot): REST is behind the book, so its earlier absence proves nothing."""
        for key in listed:
            slot = self._slots.get(key)
            if slot is not None and slot.missed_at is not None:
                slot.missed_at = None
                self.stats.reconcile_misses_withdrawn += 1

    def _close_inferred(
        self, key: PositionKey, now: float, response_ts_ms: int | None
    ) -> list[PositionEvent]:
        """Closes a key on confirmed absence: it has no row of its own, so the last one stays."""
        slot = self._slots[key]
        cause = replace(slot.last, source=Source.REST, exchange_ts_ms=response_ts_ms)
        slot.inferred = True
        slot.closed_ts_ms = response_ts_ms
        slot.missed_at = None
        slot.received_at = now  # when the close was decided: older requests cannot undo it
        self.stats.reconcile_closes += 1
        previous = self._open.views[key]
        return [self._close(previous, cause, previous.position_status, now)]

    def _remove(self, key: PositionKey) -> None:
        del self._open.views[key]
        self._touched[key.symbol] = None
        keys = self._open.by_symbol[key.symbol]
        keys.discard(key)
        if not keys:
            del self._open.by_symbol[key.symbol]

    def _view(self, snapshot: PositionSnapshot, now: float) -> PositionView:
        """A push as consumers see it: valued at the ticker mark when known (the push's own
        `markPrice` is a snapshot from push time and goes stale at once)."""
        quote = self._marks.get(snapshot.key.symbol)
        mark = quote.mark_price if quote is not None else snapshot.mark_price
        return PositionView(
            key=snapshot.key,
            side=snapshot.side,
            size=snapshot.size,
            entry_price=snapshot.entry_price,
            mark_price=mark,
            unrealised_pnl=unrealised_pnl(snapshot.side, snapshot.entry_price, mark, snapshot.size),
            leverage=snapshot.leverage,
            position_status=snapshot.position_status,
            stop_loss=snapshot.stop_loss,
            take_profit=snapshot.take_profit,
            trailing_stop=snapshot.trailing_stop,
            liq_price=snapshot.liq_price,
            open_time_ms=snapshot.open_time_ms,
            status="open",
            source=snapshot.source,
            exchange_ts_ms=snapshot.exchange_ts_ms,
            cs=None,
            seq=known_seq(snapshot.seq),
            received_at=now,
        )


def confirmation_requests(
    symbols: list[str], max_symbols: int = CONFIRM_SYMBOLS_MAX
) -> list[str | None]:
    """What to fetch for `take_confirmations()`'s symbols: `position/list?symbol=` each, or
    (None) one complete listing when there are more than `max_symbols` of them."""
    if len(symbols) > max_symbols:
        return [None]
    return list(symbols)
