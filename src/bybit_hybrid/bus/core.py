"""The hybrid core, re-cut for the bus: a hub's core (public sockets only) and a worker's core
(marks from the bus, its own public sockets only while the bus is unhealthy).

Both are `HybridCore`s driven by the unchanged `StreamRunner`; they only change where ticker
demand comes from and where marks go, so the single-process product is untouched.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from decimal import Decimal
from typing import Final

from bybit_hybrid.protocol.domain import Source, TickerUpdate
from bybit_hybrid.protocol.hybrid import PRIVATE, HybridConfig, HybridCore
from bybit_hybrid.protocol.marks import MarkCache
from bybit_hybrid.wire.decode import TickerMessage
from bybit_hybrid.wire.signing import Credentials

# The hub holds no keys; its private session is removed before it could ever connect.
_NO_KEY: Final = "hub-has-no-key"

MarkSink = Callable[[str, Decimal, int, "int | None"], None]


class _SinkMarks(MarkCache):
    """A mark cache that hands every mark change of a ticker frame to a sink (the hub)."""

    def __init__(self, sink: MarkSink) -> None:
        super().__init__()
        self._sink = sink

    def apply_frame(self, message: TickerMessage, now: float) -> Decimal | None:
        mark = super().apply_frame(message, now)
        if mark is not None:
            self._sink(message.data.symbol, mark, message.ts_ms, message.cs)
        return mark


class HubCore(HybridCore):
    """Public sockets only, subscribed to exactly `set_demand`'s symbols; each mark change of
    a frame goes to `sink(symbol, mark, ts_ms, cs)`."""

    def __init__(self, sink: MarkSink, config: HybridConfig | None = None) -> None:
        super().__init__(Credentials(_NO_KEY, _NO_KEY), config, random.Random())
        self.retire_socket(PRIVATE, "a hub has no private socket")
        self.drop_rest_requests()  # no positions to bootstrap
        self.marks = _SinkMarks(sink)
        self._demand: set[str] = set()

    @property
    def demand(self) -> frozenset[str]:
        return frozenset(self._demand)

    def set_demand(self, symbols: set[str], now: float) -> None:
        for symbol in sorted(symbols - self._demand):
            self.set_ticker_refs(symbol, 1, now)
        for symbol in sorted(self._demand - symbols):
            self.set_ticker_refs(symbol, 0, now)
        self._demand = set(symbols)


class WorkerCore(HybridCore):
    """An account's core whose marks come from the bus (`on_bus_mark`); `use_public` brings
    up its own public sockets for the open symbols (the fallback), `use_bus` retires them."""

    def __init__(
        self,
        credentials: Credentials,
        config: HybridConfig | None = None,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(credentials, config, rng)
        self.own_tickers = False
        self.retire_socket(self.primary_public, "marks from the bus")
        self.bus_marks_applied = 0
        # Symbols the worker holds a bus subscription for (it sets this): counted as
        # subscribed tickers, so the rollout's "zero subscriptions" alert judges the bus.
        self.bus_subjects = 0

    @property
    def bus_marks(self) -> bool:
        """True while the marks come from the bus (no own public socket)."""
        return not self.own_tickers

    def subscribed_tickers(self) -> int:
        own = super().subscribed_tickers()
        return own + (self.bus_subjects if self.bus_marks else 0)

    def on_bus_mark(
        self, symbol: str, mark: Decimal, ts_ms: int, cs: int | None, now: float
    ) -> None:
        """A mark from the bus: merged like a ticker delta (a lower `cs` is stale)."""
        if not self.book.refcount(symbol):
            return
        self.stats.ticker_updates += 1
        update = TickerUpdate(symbol, False, mark, None, None, cs, ts_ms)
        changed = self.marks.apply(update, now)
        if changed is not None:
            self.bus_marks_applied += 1
            self.apply_mark(symbol, changed, ts_ms, cs, now=now, source=Source.TICKER)

    def use_public(self, now: float) -> None:
        """Subscribes this account's own public sockets for every open symbol."""
        if not self.bus_marks:
            return
        self.own_tickers = True
        self.restore_public_socket(now)
        self.book.take_touched_symbols()
        for symbol, count in self.book.symbol_refcounts().items():
            self.set_ticker_refs(symbol, count, now)

    def use_bus(self, now: float) -> None:
        """Unsubscribes and closes the own public sockets; the marks held stay (the bus's
        next mark for a symbol moves them on)."""
        if self.bus_marks:
            return
        self.own_tickers = False
        for symbol in self.ticker_refs():
            self.set_ticker_refs(symbol, 0, now, keep_mark=True)
        self.retire_socket(self.primary_public, "marks from the bus again")
