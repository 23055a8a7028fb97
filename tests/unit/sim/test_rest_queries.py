"""REST query results of the pure exchange: position/list rows and cursors, tickers, instruments."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from bybit_hybrid.sim.exchange import Exchange, ExchangeError
from bybit_hybrid.sim.positions import PositionMode, Side
from tests.unit.sim.helpers import T0_MS, d, make_exchange


def _with_positions(symbols: int = 8) -> Exchange:
    ex = make_exchange(symbols)
    for i, (symbol, inst) in enumerate(ex.instruments.items()):
        side = Side.BUY if i % 2 == 0 else Side.SELL
        ex.market_order(symbol, side, inst.min_order_qty, 0, T0_MS + i)
    return ex


def _pages(ex: Exchange, **params: str) -> list[dict[str, Any]]:
    pages: list[dict[str, Any]] = []
    cursor = ""
    while True:
        query = {"category": "linear", **params, **({"cursor": cursor} if cursor else {})}
        pages.append(ex.position_list(query))
        cursor = pages[-1]["nextPageCursor"]
        if not cursor:
            return pages


def test_settle_coin_pagination_with_percent_cursors() -> None:
    ex = _with_positions()
    pages = _pages(ex, settleCoin="USDT", limit="2")
    symbols = [row["symbol"] for page in pages for row in page["list"]]
    usdt = sorted(s for s, i in ex.instruments.items() if i.settle_coin == "USDT")
    assert symbols == usdt
    first_cursor = pages[0]["nextPageCursor"]
    last = pages[0]["list"][-1]["symbol"]
    assert first_cursor == f"{last}%3A0%2C{last}%3A0"
    assert pages[-1]["nextPageCursor"] == ""
    usdc = [row["symbol"] for p in _pages(ex, settleCoin="USDC", limit="1") for row in p["list"]]
    assert usdc == sorted(s for s, i in ex.instruments.items() if i.settle_coin == "USDC")


def test_cursor_escaped_twice_by_a_client_still_works() -> None:
    ex = _with_positions()
    first = ex.position_list({"category": "linear", "settleCoin": "USDT", "limit": "1"})
    # A client that percent-encodes the cursor sends %25: after one decode the server sees %3A.
    double = quote(first["nextPageCursor"], safe="")
    second = ex.position_list(
        {
            "category": "linear",
            "settleCoin": "USDT",
            "limit": "1",
            "cursor": double.replace("%25", "%"),
        }
    )
    assert second["list"][0]["symbol"] > first["list"][0]["symbol"]


def test_symbol_query_returns_flat_rows_and_hedge_pairs() -> None:
    ex = make_exchange()
    flat = ex.position_list({"category": "linear", "symbol": "SOLUSDT"})["list"]
    assert [(r["positionIdx"], r["side"], r["size"], r["seq"]) for r in flat] == [(0, "", "0", -1)]
    ex.set_position_mode("ETHUSDT", PositionMode.HEDGE, T0_MS)
    ex.market_order("ETHUSDT", Side.BUY, d("0.1"), 1, T0_MS + 1)
    rows = ex.position_list({"category": "linear", "symbol": "ETHUSDT"})["list"]
    assert [(r["positionIdx"], r["side"]) for r in rows] == [(1, "Buy"), (2, "")]
    paged = _pages(ex, symbol="ETHUSDT", limit="1")
    assert [p["list"][0]["positionIdx"] for p in paged] == [1, 2]
    settle_rows = ex.position_list({"category": "linear", "settleCoin": "USDT"})["list"]
    assert [(r["symbol"], r["positionIdx"]) for r in settle_rows] == [("ETHUSDT", 1)]


@pytest.mark.parametrize(
    "params",
    [
        {"category": "linear"},
        {"settleCoin": "USDT"},
        {"category": "linear", "settleCoin": "USDT", "limit": "0"},
        {"category": "linear", "settleCoin": "USDT", "limit": "201"},
        {"category": "linear", "settleCoin": "USDT", "cursor": "garbage"},
        {"category": "linear", "symbol": "NOPEUSDT"},
    ],
)
def test_position_list_param_errors(params: dict[str, str]) -> None:
    with pytest.raises(ExchangeError) as err:
        make_exchange().position_list(params)
    assert err.value.ret_code == 10001


def test_other_categories_are_empty() -> None:
    result = _with_positions().position_list({"category": "inverse"})
    assert result == {"list": [], "nextPageCursor": "", "category": "inverse"}


def test_tickers_and_instruments_pagination() -> None:
    ex = make_exchange(30)
    all_rows = ex.tickers({"category": "linear"})["list"]
    assert len(all_rows) == 30
    one = ex.tickers({"category": "linear", "symbol": "ETHUSDT"})["list"]
    assert one[0]["markPrice"] == ex.prices.tickers["ETHUSDT"].fields["markPrice"]
    names: list[str] = []
    cursor = ""
    while True:
        query = {"category": "linear", "limit": "7", **({"cursor": cursor} if cursor else {})}
        page = ex.instruments_info(query)
        names += [row["symbol"] for row in page["list"]]
        cursor = page["nextPageCursor"]
        if not cursor:
            break
        assert "%" in cursor
    assert names == list(ex.instruments)
    assert len(ex.instruments_info({"category": "linear"})["list"]) == 30
    btc = ex.instruments_info({"category": "linear", "symbol": "BTCUSDT"})["list"][0]
    assert btc["priceFilter"]["tickSize"] == "0.10"
    assert btc["lotSizeFilter"]["qtyStep"] == "0.001"
