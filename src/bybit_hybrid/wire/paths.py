"""Bybit V5 REST endpoint paths, by name: the one place they are spelled."""

from __future__ import annotations

from typing import Final

POSITION_LIST: Final = "/v5/position/list"
TRADING_STOP: Final = "/v5/position/trading-stop"
ORDER_CREATE: Final = "/v5/order/create"
MARKET_TIME: Final = "/v5/market/time"
TICKERS: Final = "/v5/market/tickers"
INSTRUMENTS: Final = "/v5/market/instruments-info"
