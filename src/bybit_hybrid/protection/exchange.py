"""The protection's gateway on REST: move a stop, confirm a position, close it at market.

Single attempts only (the REST client's own retries are switched off per call), each behind the
shared account limiter: retries belong to the adapters, which re-decide before every attempt
(a newer stop, a hand-set one, a mark through the stop).
"""

from __future__ import annotations

import itertools
import time
from decimal import Decimal
from typing import Final

from bybit_hybrid.protection.gateway import ProtectionRest
from bybit_hybrid.protection.limiter import AccountLimiter
from bybit_hybrid.protection.prices import price_text
from bybit_hybrid.protocol.domain import (
    Instrument,
    PositionKey,
    PositionSnapshot,
    Side,
    TickerUpdate,
)
from bybit_hybrid.protocol.marks import TickerState
from bybit_hybrid.wire.messages import OrderCreateRequest, TradingStopRequest
from bybit_hybrid.wire.paths import ORDER_CREATE, POSITION_LIST, TRADING_STOP

CATEGORY: Final = "linear"
_link_ids = itertools.count(1)


class ProtectionExchange:
    """Thin, rate-limited wrapper of the REST client for stops and reduce-only closes."""

    def __init__(
        self, rest: ProtectionRest, limiter: AccountLimiter, sl_trigger_by: str = "MarkPrice"
    ) -> None:
        self.rest = rest
        self.limiter = limiter
        self.sl_trigger_by = sl_trigger_by

    def stop_request(self, key: PositionKey, stop_price: Decimal) -> TradingStopRequest:
        return TradingStopRequest(
            category=CATEGORY,
            symbol=key.symbol,
            positionIdx=key.idx,
            tpslMode="Full",
            stopLoss=price_text(stop_price),
            slTriggerBy=self.sl_trigger_by,
        )

    async def set_stop(self, key: PositionKey, stop_price: Decimal) -> bool:
        """True if the stop changed, False on 34040 (already there); other errors raise."""
        request = self.stop_request(key, stop_price)
        await self.limiter.acquire(TRADING_STOP)
        return await self.rest.apply_trading_stop(request, retry=False)

    def server_now_ms(self) -> int:
        """The exchange's clock as the REST client estimates it (for rate-limit resets)."""
        return self.rest.now_ms()

    async def trigger_price(self, symbol: str) -> Decimal | None:
        """A fresh price of the type the stop triggers on, from REST tickers (None: unknown)."""
        for ticker in await self.rest.get_tickers(symbol):
            if ticker.symbol == symbol:
                return trigger_price_of(ticker, self.sl_trigger_by)
        return None

    async def open_row(self, key: PositionKey) -> PositionSnapshot | None:
        """The exchange's row for `key` if that position is open now, else None."""
        await self.limiter.acquire(POSITION_LIST)
        page = await self.rest.get_positions(symbol=key.symbol)
        for row in page.positions:
            if row.key == key and row.is_open:
                return row
        return None

    async def close_at_market(self, key: PositionKey, side: Side, qty: Decimal) -> str:
        """A reduce-only market order for `qty` against a `side` position; returns orderId."""
        request = OrderCreateRequest(
            category=CATEGORY,
            symbol=key.symbol,
            side=(Side.SELL if side is Side.BUY else Side.BUY).value,
            orderType="Market",
            qty=price_text(qty),
            positionIdx=key.idx,
            reduceOnly=True,
            orderLinkId=f"bh-prot-{time.time_ns() // 1_000_000}-{next(_link_ids)}",
        )
        await self.limiter.acquire(ORDER_CREATE)
        return await self.rest.create_order(request)

    async def instruments(self) -> dict[str, Instrument]:
        return await self.rest.get_instruments()


def trigger_price_of(prices: TickerUpdate | TickerState, trigger_by: str) -> Decimal | None:
    """The price of `trigger_by`'s type (MarkPrice, LastPrice, IndexPrice) from a ticker."""
    if trigger_by == "LastPrice":
        return prices.last_price
    if trigger_by == "IndexPrice":
        return prices.index_price
    return prices.mark_price
