"""Every documented example frame decodes to the expected typed message and values."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bybit_hybrid.protocol.domain import PositionKey, Side, Source
from bybit_hybrid.wire.convert import position_from_rest, position_from_ws, ticker_from_wire
from bybit_hybrid.wire.decode import (
    OpReply,
    Pong,
    PositionMessage,
    TickerMessage,
    decode_rest_envelope,
    decode_result,
    decode_ws,
)
from bybit_hybrid.wire.messages import EmptyResult, PositionListResult
from tests.fixtures import frame


def test_auth_ok_f01() -> None:
    msg = decode_ws(frame("F01"))
    assert msg == OpReply(
        op="auth", success=True, ret_msg="", req_id=None, conn_id="cejreaspqfh3sjdnldmg-p"
    )


def test_auth_failure_f02() -> None:
    msg = decode_ws(frame("F02"))
    assert isinstance(msg, OpReply)
    assert (msg.op, msg.success, msg.ret_msg) == ("auth", False, "Params Error")


def test_order_entry_auth_shape_is_accepted() -> None:
    raw = b'{"op":"auth","success":false,"retCode":10003,"retMsg":"Invalid apikey","connId":"x"}'
    msg = decode_ws(raw)
    assert isinstance(msg, OpReply)
    assert (msg.success, msg.ret_msg) == (False, "Invalid apikey")
    ok = decode_ws(b'{"op":"auth","retCode":0,"retMsg":"OK"}')
    assert isinstance(ok, OpReply) and ok.success


@pytest.mark.parametrize(
    ("name", "req_id"), [("F03", None), ("F03b", "ping-pp")], ids=["no-req-id", "req-id"]
)
def test_public_pong_shape_f03(name: str, req_id: str | None) -> None:
    msg = decode_ws(frame(name))
    assert isinstance(msg, Pong)
    assert not msg.private_shape
    assert msg.req_id == req_id
    assert msg.server_time_ms is None


@pytest.mark.parametrize(
    ("name", "req_id", "ts"),
    [("F04", "test", 1675418560633), ("F04b", None, 1777226678908)],
    ids=["req-id", "no-req-id"],
)
def test_private_pong_shape_f04(name: str, req_id: str | None, ts: int) -> None:
    msg = decode_ws(frame(name))
    assert isinstance(msg, Pong)
    assert msg.private_shape
    assert msg.req_id == req_id
    assert msg.server_time_ms == ts


def test_bare_text_pong() -> None:
    assert isinstance(decode_ws("pong"), Pong)


@pytest.mark.parametrize(
    ("name", "op", "success", "ret_msg", "req_id"),
    [
        ("F05", "subscribe", True, "", "probe-pp"),
        ("F06", "subscribe", True, "", None),
        ("F07", "subscribe", False, "error:handler not found,topic:orderbook.50.NOPEUSDT", "e1"),
        ("F08", "subscribe", False, "error:already subscribed,topic:orderbook.1.ETHUSDT", "e6"),
        ("F09", "unsubscribe", True, "", "3"),
    ],
)
def test_subscribe_replies(
    name: str, op: str, success: bool, ret_msg: str, req_id: str | None
) -> None:
    msg = decode_ws(frame(name))
    assert isinstance(msg, OpReply)
    assert (msg.op, msg.success, msg.ret_msg, msg.req_id) == (op, success, ret_msg, req_id)


def test_ticker_snapshot_f10() -> None:
    msg = decode_ws(frame("F10"))
    assert isinstance(msg, TickerMessage)
    assert msg.is_snapshot and msg.topic == "tickers.BTCUSDT"
    assert (msg.cs, msg.ts_ms) == (9532239429, 1760325052630)
    update = ticker_from_wire(msg)
    assert update.mark_price == Decimal("66666.60")
    assert update.last_price == Decimal("66666.60")
    assert update.index_price == Decimal("115418.19")


def test_ticker_delta_without_mark_f11() -> None:
    msg = decode_ws(frame("F11"))
    assert isinstance(msg, TickerMessage)
    assert not msg.is_snapshot
    update = ticker_from_wire(msg)
    assert update.symbol == "AAVEUSDT"
    assert update.mark_price is None  # absent means unchanged, not zero
    assert update.last_price is None


def test_ticker_delta_with_mark_f12() -> None:
    update = ticker_from_wire(_ticker("F12"))
    assert update.mark_price == Decimal("86716.30")
    assert update.last_price is None
    assert update.cs == 814547789569


def _ticker(name: str) -> TickerMessage:
    msg = decode_ws(frame(name))
    assert isinstance(msg, TickerMessage)
    return msg


def _positions(name: str) -> PositionMessage:
    msg = decode_ws(frame(name))
    assert isinstance(msg, PositionMessage)
    return msg


def test_position_open_f13_reads_entry_price() -> None:
    msg = _positions("F13")
    assert msg.creation_time_ms == 1762199126022
    (snap,) = (position_from_ws(row, msg.creation_time_ms) for row in msg.data)
    assert snap.key == PositionKey("BTCUSDT", 0)
    assert snap.side is Side.BUY and snap.size == Decimal("0.01")
    assert snap.entry_price == Decimal("65000")
    assert snap.mark_price == Decimal("65120.5")
    assert snap.stop_loss == Decimal("63700")
    assert snap.take_profit is None  # "0" means unset
    assert snap.trailing_stop is None
    assert snap.seq == 325852190774
    assert snap.updated_time_ms == 1762199126015
    assert snap.open_time_ms == 1762199125980
    assert snap.source is Source.POSITION
    assert snap.exchange_ts_ms == 1762199126022
    assert snap.is_open


def test_hedge_mode_f14_gives_two_keys() -> None:
    msg = _positions("F14")
    snaps = [position_from_ws(row, msg.creation_time_ms) for row in msg.data]
    assert [s.key for s in snaps] == [PositionKey("ETHUSDT", 1), PositionKey("ETHUSDT", 2)]
    assert [s.side for s in snaps] == [Side.BUY, Side.SELL]
    assert snaps[0].liq_price is None  # "" means none
    assert snaps[0].seq == snaps[1].seq


def test_position_close_f15() -> None:
    msg = _positions("F15")
    (snap,) = (position_from_ws(row, msg.creation_time_ms) for row in msg.data)
    assert snap.key == PositionKey("BTCUSDT", 2)
    assert snap.side is None and snap.size == 0 and not snap.is_open
    assert snap.entry_price is None  # "0" on a flat row
    assert snap.open_time_ms is None  # field absent


def test_rest_position_list_f16_reads_avg_price_and_cursor() -> None:
    envelope = decode_rest_envelope(frame("F16"))
    assert (envelope.retCode, envelope.retMsg, envelope.time) == (0, "OK", 1762199130000)
    result = decode_result(envelope, PositionListResult)
    assert result.nextPageCursor == "BTCUSDT%3A0%2CBTCUSDT%3A0"
    (snap,) = (position_from_rest(row, envelope.time) for row in result.items)
    assert snap.entry_price == Decimal("65000")
    assert snap.source is Source.REST
    assert snap.key == PositionKey("BTCUSDT", 0)


@pytest.mark.parametrize(
    ("name", "code", "message"),
    [
        ("F17", 0, "OK"),
        ("F18", 34040, "not modified"),
        ("F19", 10001, "can not set tp/sl/ts for zero position"),
        (
            "F20",
            10001,
            "StopLoss:68870000 set for Buy position should lower than "
            "base_price:68500000??LastPrice",
        ),
        (
            "A06",
            10002,
            "invalid request, please check your server timestamp or recv_window param. "
            "req_timestamp[1696396708819],server_timestamp[1696396707813],recv_window[15000]",
        ),
    ],
)
def test_rest_trading_stop_replies(name: str, code: int, message: str) -> None:
    envelope = decode_rest_envelope(frame(name))
    assert (envelope.retCode, envelope.retMsg) == (code, message)
    assert decode_result(envelope, EmptyResult) == EmptyResult()
