"""`/v5/position/trading-stop` semantics: success, 34040, zero position, wrong side, idx mode."""

from __future__ import annotations

from typing import Any

import pytest

from bybit_hybrid.sim.exchange import Exchange, ExchangeError
from bybit_hybrid.sim.history import EventKind
from bybit_hybrid.sim.positions import PositionMode, Side
from tests.unit.sim.helpers import T0_MS, d, make_exchange, position_rows, stop_body


def _error(ex: Exchange, body: dict[str, Any]) -> tuple[int, str]:
    with pytest.raises(ExchangeError) as err:
        ex.trading_stop(body, T0_MS + 10)
    return err.value.ret_code, err.value.ret_msg


def _long(ex: Exchange, symbol: str = "BTCUSDT", side: Side = Side.BUY) -> None:
    qty = ex.instruments[symbol].min_order_qty
    ex.market_order(symbol, side, qty, 0, T0_MS)
    ex.drain_pushes()


def test_success_sets_stop_and_pushes_position() -> None:
    ex = make_exchange()
    _long(ex)
    assert ex.trading_stop(stop_body(stopLoss="64100", slTriggerBy="MarkPrice"), T0_MS + 5) == {}
    pos = ex.slot("BTCUSDT", 0)
    assert pos.stop_loss == d("64100")
    rows = position_rows(ex.drain_pushes())
    assert [r["stopLoss"] for r in rows] == ["64100"]


def test_same_value_is_not_modified() -> None:
    ex = make_exchange()
    _long(ex)
    ex.trading_stop(stop_body(stopLoss="64100"), T0_MS + 5)
    assert _error(ex, stop_body(stopLoss="64100.0")) == (34040, "not modified")
    assert _error(ex, stop_body()) == (34040, "not modified")
    assert _error(ex, stop_body(takeProfit="0")) == (34040, "not modified")
    assert not position_rows(ex.drain_pushes())[1:]


def test_zero_position() -> None:
    ex = make_exchange()
    assert _error(ex, stop_body(stopLoss="64000")) == (
        10001,
        "can not set tp/sl/ts for zero position",
    )


def test_wrong_side_stop_loss_messages() -> None:
    ex = make_exchange()
    _long(ex)
    assert _error(ex, stop_body(stopLoss="68870")) == (
        10001,
        "StopLoss:6887000000000 set for Buy position should lower than "
        "base_price:6500000000000??LastPrice",
    )
    _long(ex, "ETHUSDT", Side.SELL)
    assert _error(ex, stop_body("ETHUSDT", stopLoss="3100", slTriggerBy="MarkPrice")) == (
        10001,
        "StopLoss:310000000000 set for Sell position should greater than "
        "base_price:320000000000??MarkPrice",
    )
    code, msg = _error(ex, stop_body(takeProfit="60000"))
    assert code == 10001
    assert msg.startswith("TakeProfit:6000000000000 set for Buy position should greater than")


def test_position_idx_must_match_mode() -> None:
    ex = make_exchange()
    _long(ex)
    assert _error(ex, stop_body(idx=1, stopLoss="64000")) == (
        10001,
        "position idx not match position mode",
    )
    ex.set_position_mode("ETHUSDT", PositionMode.HEDGE, T0_MS)
    assert _error(ex, stop_body("ETHUSDT", idx=0, stopLoss="3000")) == (
        10001,
        "position idx not match position mode",
    )


@pytest.mark.parametrize(
    "body",
    [
        stop_body(stopLoss="64000.05"),
        stop_body(stopLoss="-1"),
        stop_body(stopLoss="abc"),
        stop_body(slTriggerBy="Nope", stopLoss="64000"),
        stop_body(symbol="NOPEUSDT", stopLoss="1"),
        {**stop_body(stopLoss="64000"), "category": "spot"},
        {**stop_body(stopLoss="64000"), "positionIdx": 7},
        {**stop_body(stopLoss="64000"), "tpslMode": "Partial"},
    ],
)
def test_bad_params_are_10001(body: dict[str, Any]) -> None:
    ex = make_exchange()
    _long(ex)
    code, msg = _error(ex, body)
    assert code == 10001
    assert msg.startswith("params error")


def test_every_request_is_recorded() -> None:
    ex = make_exchange()
    _error(ex, stop_body(stopLoss="1"))
    _long(ex)
    ex.trading_stop(stop_body(stopLoss="64000"), T0_MS + 20, raw_body='{"raw": 1}')
    records = ex.history.of_kind(EventKind.TRADING_STOP)
    assert [(r.details["ret_code"], r.details["received_ms"]) for r in records] == [
        (10001, T0_MS + 10),
        (0, T0_MS + 20),
    ]
    assert records[1].details["body"]["stopLoss"] == "64000"
    assert records[1].details["raw_body"] == '{"raw": 1}'


def test_trailing_stop_is_a_distance() -> None:
    ex = make_exchange()
    _long(ex)
    ex.trading_stop(stop_body(trailingStop="150", activePrice="66000"), T0_MS + 5)
    row = position_rows(ex.drain_pushes())[-1]
    assert row["trailingStop"] == "150"
    assert _error(ex, stop_body(trailingStop="150", activePrice="66000")) == (34040, "not modified")
