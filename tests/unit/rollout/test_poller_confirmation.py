"""`RestPoller` confirms a key a listing missed within the same poll (issue 19 F1)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from bybit_hybrid.protocol.domain import PositionKey, Source, TickerUpdate
from bybit_hybrid.protocol.events import PositionClosed, PositionEvent
from bybit_hybrid.protocol.polling import PollConfig, PollNeeds, PollPlanner
from bybit_hybrid.protocol.restbook import RestBook
from bybit_hybrid.transport.errors import BybitError
from bybit_hybrid.transport.poller import RestPoller
from bybit_hybrid.transport.rest import PositionPage
from tests.unit.protocol.builders import pos

SOL = PositionKey("SOLUSDT", 0)


class FakeRest:
    """Answers complete listings from `listing` and `?symbol=` from `by_symbol`."""

    def __init__(self) -> None:
        self.listing = [replace(pos(symbol="SOLUSDT", seq=5), source=Source.REST)]
        self.by_symbol = {
            "SOLUSDT": [replace(pos(symbol="SOLUSDT", size="0", seq=6), source=Source.REST)]
        }
        self.calls: list[str | None] = []
        self.rate_limits: dict[str, Any] = {}

    async def get_positions(self, *, symbol: str | None = None) -> PositionPage:
        self.calls.append(symbol)
        rows = self.listing if symbol is None else self.by_symbol[symbol]
        return PositionPage(list(rows), 1_000)

    async def get_tickers(self, symbol: str | None = None) -> list[TickerUpdate]:
        return []


class BookTarget:
    """A RestBook as the poll target, as the REST-only stream uses it."""

    def __init__(self) -> None:
        self.book = RestBook()
        self.events: list[PositionEvent] = []

    def needs(self) -> PollNeeds:
        return PollNeeds(open_positions=len(self.book.book), rest_drives=True)

    def apply_positions(self, page: PositionPage, requested_at: float, now: float) -> None:
        self.events += self.book.on_positions(page.positions, now, requested_at=requested_at)

    def apply_tickers(self, updates: list[TickerUpdate], now: float) -> None:
        pass

    def confirmations(self) -> list[str | None]:
        return self.book.take_confirmations()

    def apply_confirmation(
        self, symbol: str | None, page: PositionPage, requested_at: float, now: float
    ) -> None:
        assert symbol is not None
        self.events += self.book.on_confirm(symbol, page.positions, now, requested_at=requested_at)

    def poll_failed(self, error: BybitError, retry_in_s: float, now: float) -> None:
        raise AssertionError(error)

    def polled(self, now: float) -> None:
        pass


async def test_a_close_seen_by_rest_alone_is_confirmed_and_emitted_in_the_same_poll() -> None:
    rest, target = FakeRest(), BookTarget()
    clock = iter(float(t) for t in range(1000))
    poller = RestPoller(
        rest,  # type: ignore[arg-type]
        target,
        PollPlanner(PollConfig()),
        clock=lambda: next(clock),
    )
    await poller._poll_once()
    assert SOL in target.book.book and rest.calls == [None]
    rest.listing = []  # SOL closed on the exchange
    await poller._poll_once()
    # The miss is confirmed by position/list?symbol= at once, not a poll interval later.
    assert rest.calls == [None, None, "SOLUSDT"]
    assert [type(e) for e in target.events[1:]] == [PositionClosed]
    assert SOL not in target.book.book
