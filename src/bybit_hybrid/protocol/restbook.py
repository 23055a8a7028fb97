"""The REST-only position book: polled snapshots and tickers in, the hybrid stream's events out.

It reuses `PositionBook` and `MarkCache`, so a poll emits exactly what the hybrid core would
for the same data: opens, changes and closes through the same ordering and de-duplication,
mark revaluations only when the mark really moved, every view with `source` REST. A key a
listing misses is closed only once confirmed (`take_confirmations`, `on_confirm`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from bybit_hybrid.protocol.domain import PositionSnapshot, Source, TickerUpdate
from bybit_hybrid.protocol.events import PositionEvent
from bybit_hybrid.protocol.marks import MarkCache
from bybit_hybrid.protocol.positions import PositionBook, confirmation_requests


@dataclass(slots=True)
class RestBookStats:
    position_polls: int = 0
    ticker_polls: int = 0
    events: int = 0


class RestBook:
    """Open positions as REST sees them; every input returns the events it caused."""

    def __init__(self) -> None:
        self.book = PositionBook()
        self.marks = MarkCache()
        self.stats = RestBookStats()

    def on_positions(
        self,
        snapshots: Iterable[PositionSnapshot],
        now: float,
        *,
        requested_at: float | None = None,
        response_ts_ms: int | None = None,
    ) -> list[PositionEvent]:
        """Merges one complete `position/list` answer (all settle coins, all pages)."""
        self.stats.position_polls += 1
        events = self.book.reconcile(
            snapshots, now, complete=True, requested_at=requested_at, response_ts_ms=response_ts_ms
        )
        self._forget_unheld()
        return self._count(events)

    def on_confirm(
        self,
        symbol: str,
        snapshots: Iterable[PositionSnapshot],
        now: float,
        *,
        requested_at: float,
        response_ts_ms: int | None = None,
    ) -> list[PositionEvent]:
        """Merges a `position/list?symbol=` answer asked for by `take_confirmations`."""
        events = self.book.confirm(
            symbol, snapshots, now, requested_at=requested_at, response_ts_ms=response_ts_ms
        )
        self._forget_unheld()
        return self._count(events)

    def take_confirmations(self) -> list[str | None]:
        """What to fetch now to confirm keys a listing missed: symbols, or None for one
        complete listing (`protocol.positions.confirmation_requests`)."""
        return confirmation_requests(self.book.take_confirmations())

    def on_tickers(self, updates: Iterable[TickerUpdate], now: float) -> list[PositionEvent]:
        """Revalues held positions from `market/tickers` rows; other symbols are ignored."""
        self.stats.ticker_polls += 1
        held = self.book.open_symbols()
        events: list[PositionEvent] = []
        for update in updates:
            if update.symbol not in held or update.mark_price is None:
                continue
            mark = self.marks.seed(update.symbol, update.mark_price, update.ts_ms, now)
            if mark is not None:
                events += self.book.apply_mark(
                    update.symbol, mark, ts_ms=update.ts_ms, cs=None, now=now, source=Source.REST
                )
        return self._count(events)

    def held_symbols(self) -> set[str]:
        return self.book.open_symbols()

    def _forget_unheld(self) -> None:
        """A closed symbol's mark must not value its next open: drop it, as the core does when
        it unsubscribes the ticker."""
        held = self.book.open_symbols()
        for symbol in self.marks.symbols() - held:
            self.marks.drop(symbol)
            self.book.forget_mark(symbol)

    def _count(self, events: list[PositionEvent]) -> list[PositionEvent]:
        self.stats.events += len(events)
        return events
