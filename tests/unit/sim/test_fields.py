"""Field tables: exact key sets and JSON types versus the documented examples F10, F13, F16."""

from __future__ import annotations

import json
from typing import Any

from bybit_hybrid.sim.positions import Side
from tests.unit.sim.helpers import T0_MS, d, make_exchange

# Keys of F13 (WS position), F16 (REST position/list row) and F10 (+2026 single-side OI) tickers.
F13_KEYS = {
    "positionIdx", "tradeMode", "riskId", "riskLimitValue", "symbol", "side", "size",
    "entryPrice", "sessionAvgPrice", "leverage", "breakEvenPrice", "positionValue",
    "positionBalance", "markPrice", "positionIM", "positionIMByMp", "positionMM",
    "positionMMByMp", "takeProfit", "stopLoss", "trailingStop", "unrealisedPnl",
    "curRealisedPnl", "cumRealisedPnl", "createdTime", "updatedTime", "openTime", "tpslMode",
    "liqPrice", "bustPrice", "category", "positionStatus", "adlRankIndicator", "autoAddMargin",
    "leverageSysUpdatedTime", "mmrSysUpdatedTime", "seq", "isReduceOnly",
}  # fmt: skip
F16_KEYS = (F13_KEYS - {"entryPrice", "category"}) | {"avgPrice"}
F10_KEYS = {
    "symbol", "tickDirection", "price24hPcnt", "lastPrice", "prevPrice24h", "highPrice24h",
    "lowPrice24h", "prevPrice1h", "markPrice", "indexPrice", "openInterest", "openInterestValue",
    "turnover24h", "volume24h", "fundingIntervalHour", "fundingCap", "nextFundingTime",
    "fundingRate", "bid1Price", "bid1Size", "ask1Price", "ask1Size", "preOpenPrice", "preQty",
    "curPreListingPhase",
}  # fmt: skip
INT_FIELDS = {
    "positionIdx",
    "tradeMode",
    "riskId",
    "autoAddMargin",
    "adlRankIndicator",
    "openTime",
    "seq",
}


def _check_types(row: dict[str, Any]) -> None:
    for name, value in row.items():
        if name in INT_FIELDS:
            assert type(value) is int, name
        elif name == "isReduceOnly":
            assert value is False
        else:
            assert type(value) is str, name


def test_ws_and_rest_rows_match_the_examples() -> None:
    ex = make_exchange()
    ex.market_order("BTCUSDT", Side.BUY, d("0.01"), 0, T0_MS)
    pos = ex.slot("BTCUSDT", 0)
    ws = ex.ws_row(pos)
    rest = ex.rest_row(pos)
    assert set(ws) == F13_KEYS
    assert set(rest) == F16_KEYS
    assert list(ws)[:8] == [
        "positionIdx",
        "tradeMode",
        "riskId",
        "riskLimitValue",
        "symbol",
        "side",
        "size",
        "entryPrice",
    ]
    assert ws["entryPrice"] == rest["avgPrice"] == "65000"
    assert ws["category"] == "linear"
    assert "avgPrice" not in ws
    assert "entryPrice" not in rest
    _check_types(ws)
    _check_types(rest)
    assert json.loads(json.dumps(ws)) == ws
    assert (ws["takeProfit"], ws["stopLoss"], ws["trailingStop"]) == ("0", "0", "0")
    assert ws["createdTime"] == ws["updatedTime"] == str(T0_MS)


def test_flat_row_types_and_values() -> None:
    ex = make_exchange()
    row = ex.ws_row(ex.slot("ETHUSDT", 0))
    _check_types(row)
    assert (row["side"], row["size"], row["entryPrice"], row["seq"], row["openTime"]) == (
        "",
        "0",
        "0",
        -1,
        0,
    )


def test_ticker_fields_are_all_strings() -> None:
    ex = make_exchange()
    fields = ex.ticker_fields("BTCUSDT")
    assert set(fields) >= F10_KEYS
    assert all(type(v) is str for v in fields.values())
    rest = ex.tickers({"category": "linear", "symbol": "BTCUSDT"})["list"][0]
    assert set(rest) >= F10_KEYS
    assert rest["deliveryTime"] == "0"
    assert all(type(v) is str for v in rest.values())
