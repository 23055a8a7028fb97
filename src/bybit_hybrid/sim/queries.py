"""The REST queries of the simulated exchange: position list, tickers, instruments (paginated)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote

from bybit_hybrid.sim import fields
from bybit_hybrid.sim.params import (
    ExchangeError,
    params_error,
    parse_instrument_cursor,
    parse_limit,
    parse_position_cursor,
)

if TYPE_CHECKING:
    from bybit_hybrid.sim.exchange import Exchange

POSITION_LIST_LIMIT_DEFAULT: Final = 20
POSITION_LIST_LIMIT_MAX: Final = 200
INSTRUMENTS_LIMIT_DEFAULT: Final = 500
INSTRUMENTS_LIMIT_MAX: Final = 1000


def position_list(ex: Exchange, params: Mapping[str, str]) -> dict[str, Any]:
    """`GET /v5/position/list` result object (rows with avgPrice; `%`-escaped cursors)."""
    category = params.get("category", "")
    if category in ("inverse", "option"):
        return {"list": [], "nextPageCursor": "", "category": category}
    if category != "linear":
        raise params_error("category invalid")
    limit = parse_limit(params.get("limit"), POSITION_LIST_LIMIT_DEFAULT, POSITION_LIST_LIMIT_MAX)
    symbol = params.get("symbol", "")
    settle = params.get("settleCoin", "")
    if symbol:
        slots = ex.slots(ex.instrument(symbol).symbol)
    elif settle:
        slots = [p for p in ex.open_positions() if ex.instruments[p.symbol].settle_coin == settle]
    else:
        raise params_error("symbol or settleCoin is required")
    slots.sort(key=lambda p: p.key)
    after = parse_position_cursor(params.get("cursor", ""))
    if after is not None:
        slots = [p for p in slots if p.key > after]
    page = slots[:limit]
    cursor = ""
    if len(slots) > limit:
        last = page[-1]
        cursor = quote(f"{last.symbol}:{last.idx},{last.symbol}:{last.idx}", safe="")
    return {
        "list": [ex.rest_row(p) for p in page],
        "nextPageCursor": cursor,
        "category": "linear",
    }


def tickers(ex: Exchange, params: Mapping[str, str]) -> dict[str, Any]:
    """`GET /v5/market/tickers` result object."""
    if params.get("category") != "linear":
        raise params_error("category invalid")
    symbol = params.get("symbol")
    if symbol:
        if symbol not in ex.instruments:
            raise ExchangeError(10001, "Not supported symbols")
        symbols = [symbol]
    else:
        symbols = list(ex.instruments)
    rows = [fields.rest_ticker_row(ex.prices.tickers[s].fields) for s in symbols]
    return {"category": "linear", "list": rows}


def instruments_info(ex: Exchange, params: Mapping[str, str]) -> dict[str, Any]:
    """`GET /v5/market/instruments-info` result object with cursor pagination."""
    if params.get("category") != "linear":
        raise params_error("category invalid")
    limit = parse_limit(params.get("limit"), INSTRUMENTS_LIMIT_DEFAULT, INSTRUMENTS_LIMIT_MAX)
    insts = list(ex.instruments.values())
    if params.get("symbol"):
        insts = [i for i in insts if i.symbol == params["symbol"]]
    if params.get("status", "Trading") != "Trading":
        insts = []
    after = parse_instrument_cursor(params.get("cursor", ""))
    if after is not None:
        names = [i.symbol for i in insts]
        if after not in names:
            raise params_error("cursor invalid")
        insts = insts[names.index(after) + 1 :]
    page = insts[:limit]
    cursor = ""
    if len(insts) > limit:
        cursor = quote(f"first={page[0].symbol}&last={page[-1].symbol}", safe="")
    return {
        "category": "linear",
        "list": [fields.instrument_row(i, ex.start_ms) for i in page],
        "nextPageCursor": cursor,
    }
