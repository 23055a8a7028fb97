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
        # When the bus last showed each held symbol alive: a mark, or a hub's beat naming it.
        self.bus_heard: dict[str, float] = {}
        # Symbols served by this account's own socket while the rest come from the bus (the
        # bus went stale for them alone), and since when.
        self.own_symbols: dict[str, float] = {}
        self._held_since: dict[str, float] = {}

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
        self.bus_heard[symbol] = now
        if changed is not None:
            self.bus_marks_applied += 1
            self.apply_mark(symbol, changed, ts_ms, cs, now=now, source=Source.TICKER)

    def note_bus_heard(self, symbols: list[str], now: float) -> None:
        """A hub's beat: it hears these symbols' tickers (a quiet mark is not a stale one)."""
        for symbol in symbols:
            if self.book.refcount(symbol):
                self.bus_heard[symbol] = now

    def ticker_heard_at(self, symbol: str) -> float | None:
        heard = super().ticker_heard_at(symbol)
        if self.bus_marks and symbol not in self.own_symbols:
            bus = self.bus_heard.get(symbol)
            if bus is not None and (heard is None or bus > heard):
                heard = bus
        return heard

    def judge_bus_symbols(self, stale_after_s: float, now: float) -> list[tuple[str, bool]]:
        """Per symbol, while the marks come from the bus: a held symbol the bus has not shown
        alive for `stale_after_s` is subscribed on this account's own socket (as a stale ticker
        falls back); after `stale_after_s` there, it returns once the bus has shown it alive
        within half the bound. Returns the moves as (symbol, to_own_socket)."""
        if not self.bus_marks:
            return []
        held = self.book.symbol_refcounts()
        for symbol in [s for s in self._held_since if s not in held]:
            del self._held_since[symbol]
            self.bus_heard.pop(symbol, None)
        moves: list[tuple[str, bool]] = []
        for symbol in [s for s in self.own_symbols if s not in held]:
            self._serve_from_bus(symbol, now)
        for symbol, count in held.items():
            since = self._held_since.setdefault(symbol, now)
            age_s = now - max(self.bus_heard.get(symbol, since), since)
            own_since = self.own_symbols.get(symbol)
            if own_since is None and age_s >= stale_after_s:
                self._serve_own(symbol, count, now)
                moves.append((symbol, True))
            elif own_since is not None:
                if age_s < stale_after_s / 2 and now - own_since >= stale_after_s:
                    self._serve_from_bus(symbol, now)
                    moves.append((symbol, False))
                else:
                    self.set_ticker_refs(symbol, count, now)  # a second key of it opened
        return moves

    def _serve_own(self, symbol: str, count: int, now: float) -> None:
        if not self.own_symbols:
            self.restore_public_socket(now)
        self.own_symbols[symbol] = now
        self.set_ticker_refs(symbol, count, now)

    def _serve_from_bus(self, symbol: str, now: float) -> None:
        del self.own_symbols[symbol]
        self.set_ticker_refs(symbol, 0, now, keep_mark=True)
        if not self.own_symbols:
            self.retire_socket(self.primary_public, "every symbol on the bus again")

    def use_public(self, now: float) -> None:
        """Subscribes this account's own public sockets for every open symbol."""
        if not self.bus_marks:
            return
        self.own_tickers = True
        self.own_symbols.clear()
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
        self.own_symbols.clear()
        self._held_since.clear()  # every symbol gets the full bound on the bus again
        for symbol in self.ticker_refs():
            self.set_ticker_refs(symbol, 0, now, keep_mark=True)
        self.retire_socket(self.primary_public, "marks from the bus again")
