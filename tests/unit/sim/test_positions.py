"""Position semantics of the pure exchange: fills, hedge mode, seq rules, TP/SL closes, history."""

from __future__ import annotations

import pytest

from bybit_hybrid.sim.exchange import ExchangeError
from bybit_hybrid.sim.history import CloseReason, EventKind
from bybit_hybrid.sim.positions import PositionMode, Side
from tests.unit.sim.helpers import T0_MS, d, make_exchange, position_rows, stop_body


def test_open_increase_reduce_close() -> None:
    ex = make_exchange()
    ex.market_order("BTCUSDT", Side.BUY, d("0.010"), 0, T0_MS + 1)
    pos = ex.slot("BTCUSDT", 0)
    assert (pos.side, pos.size, pos.avg_price) == (Side.BUY, d("0.01"), d("65000"))
    assert pos.open_time_ms == T0_MS + 1
    ex.set_prices("BTCUSDT", T0_MS + 2, last=d("66000.00"))
    ex.market_order("BTCUSDT", Side.BUY, d("0.010"), 0, T0_MS + 3)
    assert pos.size == d("0.02")
    assert pos.avg_price == d("65500")
    assert pos.open_time_ms == T0_MS + 1  # increasing keeps the open time
    ex.market_order("BTCUSDT", Side.SELL, d("0.005"), 0, T0_MS + 4)
    assert (pos.side, pos.size) == (Side.BUY, d("0.015"))
    ex.market_order("BTCUSDT", Side.SELL, d("0.015"), 0, T0_MS + 5)
    assert (pos.side, pos.size, pos.avg_price, pos.open_time_ms) == (Side.NONE, d("0"), d("0"), 0)
    row = position_rows(ex.drain_pushes())[-1]
    assert (row["side"], row["size"], row["entryPrice"]) == ("", "0", "0")
    # Realised PnL survives the close, as in Bybit's close example.
    assert d(row["cumRealisedPnl"]) != 0


def test_flip_and_reduce_only_never_flips() -> None:
    ex = make_exchange()
    ex.market_order("ETHUSDT", Side.BUY, d("0.10"), 0, T0_MS)
    ex.market_order("ETHUSDT", Side.SELL, d("0.30"), 0, T0_MS + 1)
    pos = ex.slot("ETHUSDT", 0)
    assert (pos.side, pos.size) == (Side.SELL, d("0.2"))
    kinds = [e.kind for e in ex.history if e.kind is not EventKind.ORDER]
    assert kinds == [EventKind.OPEN, EventKind.CLOSE, EventKind.OPEN]
    ex.market_order("ETHUSDT", Side.BUY, d("0.50"), 0, T0_MS + 2, reduce_only=True)
    assert (pos.side, pos.size) == (Side.NONE, d("0"))
    with pytest.raises(ExchangeError) as err:
        ex.market_order("ETHUSDT", Side.BUY, d("0.10"), 0, T0_MS + 3, reduce_only=True)
    assert err.value.ret_code == 110017


def test_qty_is_validated_against_filters() -> None:
    ex = make_exchange()
    for qty in ("0.0005", "0.0015", "5000"):
        with pytest.raises(ExchangeError) as err:
            ex.market_order("BTCUSDT", Side.BUY, d(qty), 0, T0_MS)
        assert err.value.ret_code == 10001
    assert not ex.open_positions()


def test_hedge_mode_keeps_two_slots_and_pushes_both_rows() -> None:
    ex = make_exchange()
    ex.set_position_mode("ETHUSDT", PositionMode.HEDGE, T0_MS)
    with pytest.raises(ExchangeError, match="position idx not match position mode"):
        ex.market_order("ETHUSDT", Side.BUY, d("0.1"), 0, T0_MS)
    ex.market_order("ETHUSDT", Side.BUY, d("0.5"), 1, T0_MS + 1)
    ex.market_order("ETHUSDT", Side.SELL, d("0.2"), 2, T0_MS + 2)
    rows = position_rows(ex.drain_pushes())[-2:]
    assert [(r["positionIdx"], r["side"], r["size"]) for r in rows] == [
        (1, "Buy", "0.5"),
        (2, "Sell", "0.2"),
    ]
    assert rows[0]["seq"] == rows[1]["seq"]
    # A Sell on the Buy slot only reduces it, even when larger than the position.
    ex.market_order("ETHUSDT", Side.SELL, d("0.9"), 1, T0_MS + 3)
    assert not ex.slot("ETHUSDT", 1).is_open
    assert ex.slot("ETHUSDT", 2).size == d("0.2")
    with pytest.raises(ExchangeError) as err:
        ex.set_position_mode("ETHUSDT", PositionMode.ONE_WAY, T0_MS + 4)
    assert err.value.ret_code == 110024


def test_seq_rules() -> None:
    ex = make_exchange()
    assert ex.ws_row(ex.slot("SOLUSDT", 0))["seq"] == -1
    ex.market_order("BTCUSDT", Side.BUY, d("0.01"), 0, T0_MS)
    first = ex.seq("BTCUSDT")
    ex.market_order("ETHUSDT", Side.BUY, d("0.1"), 0, T0_MS + 1)
    ex.market_order("BTCUSDT", Side.BUY, d("0.01"), 0, T0_MS + 2)
    second = ex.seq("BTCUSDT")
    assert second > ex.seq("ETHUSDT") > first
    ex.drain_pushes()
    ex.trading_stop({"category": "linear", "symbol": "BTCUSDT", "stopLoss": "60000"}, T0_MS + 50)
    row = position_rows(ex.drain_pushes())[-1]
    assert row["seq"] == second
    assert row["updatedTime"] == str(T0_MS + 50)
    assert row["stopLoss"] == "60000"


@pytest.mark.parametrize(
    ("side", "field", "level", "price", "reason"),
    [
        (Side.BUY, "stopLoss", "64500", "64000.00", CloseReason.STOP_LOSS),
        (Side.BUY, "takeProfit", "65500", "66000.00", CloseReason.TAKE_PROFIT),
        (Side.SELL, "stopLoss", "65500", "66000.00", CloseReason.STOP_LOSS),
        (Side.SELL, "takeProfit", "64500", "64000.00", CloseReason.TAKE_PROFIT),
    ],
)
def test_tp_sl_trigger_closes_the_position(
    side: Side, field: str, level: str, price: str, reason: CloseReason
) -> None:
    ex = make_exchange()
    ex.market_order("BTCUSDT", side, d("0.01"), 0, T0_MS)
    trigger = "slTriggerBy" if field == "stopLoss" else "tpTriggerBy"
    body = {**stop_body(), field: level, trigger: "MarkPrice"}
    ex.trading_stop(body, T0_MS + 1)
    ex.set_prices("BTCUSDT", T0_MS + 2, last=d(price))
    assert ex.slot("BTCUSDT", 0).is_open, "a MarkPrice stop ignores the last price"
    ex.set_prices("BTCUSDT", T0_MS + 3, mark=d(price))
    assert not ex.slot("BTCUSDT", 0).is_open
    close = ex.history.of_kind(EventKind.CLOSE)[-1]
    assert close.reason is reason
    assert close.time_ms == T0_MS + 3
    row = position_rows(ex.drain_pushes())[-1]
    assert (row["size"], row["stopLoss"], row["takeProfit"]) == ("0", "0", "0")


def test_sl_trigger_by_last_price_ignores_mark() -> None:
    ex = make_exchange()
    ex.market_order("BTCUSDT", Side.BUY, d("0.01"), 0, T0_MS)
    ex.trading_stop(
        {
            "category": "linear",
            "symbol": "BTCUSDT",
            "stopLoss": "64000",
            "slTriggerBy": "LastPrice",
        },
        T0_MS + 1,
    )
    ex.set_prices("BTCUSDT", T0_MS + 2, mark=d("63000.00"))
    assert ex.slot("BTCUSDT", 0).is_open
    ex.set_prices("BTCUSDT", T0_MS + 3, last=d("63999.90"))
    assert not ex.slot("BTCUSDT", 0).is_open
    assert ex.history.of_kind(EventKind.CLOSE)[-1].reason is CloseReason.STOP_LOSS
    # the closing fill carries the StopLoss order type on the order topic
    orders = [p for p in ex.drain_pushes() if p.topic == "order"]
    assert orders[-1].rows[0]["stopOrderType"] == "StopLoss"


def test_control_close_and_history_reasons() -> None:
    ex = make_exchange()
    ex.market_order("BTCUSDT", Side.BUY, d("0.01"), 0, T0_MS, source=CloseReason.CONTROL)
    ex.close_position("BTCUSDT", 0, T0_MS + 1)
    closes = ex.history.of_kind(EventKind.CLOSE)
    assert [c.reason for c in closes] == [CloseReason.CONTROL]
    ex.market_order("BTCUSDT", Side.SELL, d("0.01"), 0, T0_MS + 2)
    ex.market_order("BTCUSDT", Side.BUY, d("0.01"), 0, T0_MS + 3)
    assert ex.history.of_kind(EventKind.CLOSE)[-1].reason is CloseReason.ORDER
    assert all(e.to_json()["kind"] for e in ex.history)


def test_touch_pushes_unchanged_rows_and_open_time_override() -> None:
    ex = make_exchange()
    ex.market_order("BTCUSDT", Side.BUY, d("0.01"), 0, T0_MS)
    before = position_rows(ex.drain_pushes())[-1]
    ex.touch("BTCUSDT", T0_MS + 5)
    assert position_rows(ex.drain_pushes()) == [before]
    ex.change_position("BTCUSDT", 0, T0_MS + 6, open_time_ms=T0_MS - 86_400_000)
    assert position_rows(ex.drain_pushes())[-1]["openTime"] == T0_MS - 86_400_000
