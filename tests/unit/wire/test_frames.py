"""Frame builders produce Bybit's documented request shapes; queries keep cursors verbatim."""

from __future__ import annotations

import json
from decimal import Decimal

from bybit_hybrid.wire.frames import (
    json_body,
    ping_frame,
    query_string,
    subscribe_frame,
    unsubscribe_frame,
)
from bybit_hybrid.wire.messages import OrderCreateRequest, TradingStopRequest
from tests.fixtures import frame


def test_ping_frame_a02() -> None:
    assert json.loads(ping_frame("100001")) == json.loads(frame("A02"))
    assert json.loads(ping_frame()) == {"op": "ping"}


def test_subscribe_frames_a03_a04() -> None:
    assert json.loads(subscribe_frame(["position"], "sub-pos")) == json.loads(frame("A03"))
    assert json.loads(subscribe_frame(["tickers.BTCUSDT"], "tickers.BTCUSDT")) == json.loads(
        frame("A04")
    )
    assert json.loads(unsubscribe_frame(["tickers.X"], "u1")) == {
        "req_id": "u1",
        "op": "unsubscribe",
        "args": ["tickers.X"],
    }


def test_trading_stop_body_a05() -> None:
    body = TradingStopRequest(
        category="linear",
        symbol="BTCUSDT",
        positionIdx=0,
        tpslMode="Full",
        stopLoss=str(Decimal("64100")),
        slTriggerBy="MarkPrice",
    )
    assert json.loads(json_body(body)) == json.loads(frame("A05"))


def test_order_body_omits_defaults_but_keeps_reduce_only() -> None:
    body = OrderCreateRequest(
        category="linear",
        symbol="BTCUSDT",
        side="Sell",
        orderType="Market",
        qty="0.01",
        reduceOnly=True,
    )
    assert json.loads(json_body(body)) == {
        "category": "linear",
        "symbol": "BTCUSDT",
        "side": "Sell",
        "orderType": "Market",
        "qty": "0.01",
        "reduceOnly": True,
    }


def test_query_string_keeps_order_and_percent_cursor_verbatim() -> None:
    query = query_string(
        {
            "category": "linear",
            "settleCoin": "USDT",
            "limit": 200,
            "cursor": "BTCUSDT%3A0%2CBTCUSDT%3A0",
        }
    )
    assert query == "category=linear&settleCoin=USDT&limit=200&cursor=BTCUSDT%3A0%2CBTCUSDT%3A0"


def test_query_string_encodes_reserved_characters_in_plain_values() -> None:
    assert query_string({"cursor": "a:b,c d"}) == "cursor=a%3Ab%2Cc%20d"
