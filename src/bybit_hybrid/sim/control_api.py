"""The narrow control interface of the simulator: one account's trading, and the shared market.

Control routes (`sim/control.py`) and scenarios (`sim/scenarios.py`) act through these two
classes only, never through `SimServer`: an `AccountControl` trades as the control user on one
account, a `MarketControl` forces prices and pauses the walk for everyone. Each operation
flushes the private pushes it queued, so a client sees them at once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from bybit_hybrid.sim.accounts import Accounts, SimAccount
from bybit_hybrid.sim.exchange import Exchange
from bybit_hybrid.sim.history import CloseReason
from bybit_hybrid.sim.positions import PositionMode, Side

Clock = Callable[[], int]
Flush = Callable[[], None]
Broadcast = Callable[[Mapping[str, tuple[str, ...]], int], None]


class AccountControl:
    """Positions and orders of one account, as the control user (another client of it)."""

    def __init__(self, account: SimAccount, clock_ms: Clock, flush: Flush) -> None:
        self.account = account
        self._now_ms = clock_ms
        self._flush = flush

    @property
    def name(self) -> str:
        return self.account.name

    @property
    def exchange(self) -> Exchange:
        return self.account.exchange

    def now_ms(self) -> int:
        return self._now_ms()

    async def open_position(
        self,
        symbol: str,
        side: Side | str,
        qty: Decimal,
        position_idx: int = 0,
        open_time_ms: int | None = None,
    ) -> str:
        """Fills a market order; returns the order id. `open_time_ms` back-dates a new
        position's openTime from its first push on (an aged position)."""
        side = side if isinstance(side, Side) else Side(side)
        try:
            return self.exchange.market_order(
                symbol,
                side,
                qty,
                position_idx,
                self._now_ms(),
                source=CloseReason.CONTROL,
                open_time_ms=open_time_ms,
            )
        finally:
            self._flush()

    async def close_position(self, symbol: str, position_idx: int = 0) -> str:
        try:
            return self.exchange.close_position(symbol, position_idx, self._now_ms())
        finally:
            self._flush()

    async def change_position(self, symbol: str, position_idx: int = 0, **edits: Any) -> None:
        """Edits size (trades), stop_loss, take_profit, trailing_stop, leverage, open_time_ms."""
        try:
            self.exchange.change_position(symbol, position_idx, self._now_ms(), **edits)
        finally:
            self._flush()

    async def set_position_mode(self, symbol: str, mode: PositionMode | str) -> None:
        mode = mode if isinstance(mode, PositionMode) else PositionMode(mode)
        self.exchange.set_position_mode(symbol, mode, self._now_ms())

    async def touch(self, symbol: str) -> None:
        """An order action that changes nothing; Bybit still pushes the position."""
        try:
            self.exchange.touch(symbol, self._now_ms())
        finally:
            self._flush()

    def history(self, since: int = 0) -> list[dict[str, Any]]:
        return self.exchange.history.to_json(since)


class MarketControl:
    """The market every account shares: forced prices, trends, quiet symbols, paused ticks."""

    def __init__(
        self, accounts: Accounts, clock_ms: Clock, broadcast: Broadcast, flush: Flush
    ) -> None:
        self._accounts = accounts
        self._now_ms = clock_ms
        self._broadcast = broadcast
        self._flush = flush
        self.paused = False

    @property
    def _market(self) -> Exchange:
        return self._accounts.default.exchange

    @property
    def symbols(self) -> list[str]:
        return list(self._market.instruments)

    async def set_mark(self, symbol: str, price: Decimal) -> None:
        await self.set_prices(symbol, mark=price)

    async def set_prices(
        self,
        symbol: str,
        *,
        mark: Decimal | None = None,
        last: Decimal | None = None,
        index: Decimal | None = None,
    ) -> None:
        """Forces prices now: pushes a ticker delta and fires any account's TP/SL they cross."""
        now_ms = self._now_ms()
        changed = self._accounts.set_prices(symbol, now_ms, mark=mark, last=last, index=index)
        self._broadcast({symbol: changed}, now_ms)
        self._flush()

    def set_trend(self, symbol: str, ticks_per_step: int) -> None:
        self._market.instrument(symbol)
        self._market.prices.set_trend(symbol, ticks_per_step)

    def set_quiet(self, symbol: str, quiet: bool = True) -> None:
        """A quiet market for `symbol`: ticker frames keep flowing (trades, book) but its mark
        never changes, so Bybit's deltas carry no markPrice; REST shows the same mark."""
        self._market.instrument(symbol)
        self._market.prices.set_quiet(symbol, quiet)

    def pause_ticks(self, symbol: str | None = None) -> None:
        """Stops the walk for one symbol, or for all when `symbol` is None."""
        if symbol is None:
            self.paused = True
        else:
            self._market.instrument(symbol)
            self._market.prices.pause(symbol)

    def resume_ticks(self, symbol: str | None = None) -> None:
        if symbol is None:
            self.paused = False
            self._market.prices.pause(None, paused=False)
        else:
            self._market.instrument(symbol)
            self._market.prices.pause(symbol, paused=False)
