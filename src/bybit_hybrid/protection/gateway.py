"""What protection needs from the exchange, as Protocols: the adapters' gateway and the REST calls
behind it. Declared here so protection imports no transport; the REST client satisfies
`ProtectionRest` and `exchange.ProtectionExchange` is the gateway built on it."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Protocol

from bybit_hybrid.domain import Instrument, PositionKey, PositionSnapshot, Side, TickerUpdate
from bybit_hybrid.wire.messages import OrderCreateRequest, TradingStopRequest


class PositionRows(Protocol):
    @property
    def positions(self) -> Sequence[PositionSnapshot]: ...


class ProtectionRest(Protocol):
    """The REST calls protection makes (`transport.rest.BybitRestClient` has them all)."""

    async def apply_trading_stop(
        self, request: TradingStopRequest, *, retry: bool = True
    ) -> bool: ...

    async def get_positions(self, *, symbol: str | None = None) -> PositionRows: ...

    async def create_order(self, request: OrderCreateRequest) -> str: ...

    async def get_tickers(self, symbol: str | None = None) -> list[TickerUpdate]: ...

    async def get_instruments(self) -> dict[str, Instrument]: ...

    def now_ms(self) -> int: ...


class ProtectionGateway(Protocol):
    """The adapters' view of the exchange: single attempts, the adapters decide retries."""

    async def set_stop(self, key: PositionKey, stop_price: Decimal) -> bool: ...

    async def open_row(self, key: PositionKey) -> PositionSnapshot | None: ...

    async def close_at_market(self, key: PositionKey, side: Side, qty: Decimal) -> str: ...

    async def trigger_price(self, symbol: str) -> Decimal | None: ...

    async def instruments(self) -> dict[str, Instrument]: ...

    def server_now_ms(self) -> int: ...
