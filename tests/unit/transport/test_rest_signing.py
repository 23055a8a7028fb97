"""Signed REST requests: documented vectors, exact bytes signed, cursors passed back verbatim."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from bybit_hybrid.protocol.domain import PositionKey, Side, Source
from bybit_hybrid.transport.errors import BybitError, PaginationError
from bybit_hybrid.transport.http import (
    HttpResponse,
    MockBackend,
    RecordedRequest,
    envelope_response,
)
from bybit_hybrid.transport.rest import BybitRestClient
from bybit_hybrid.wire.frames import json_body
from bybit_hybrid.wire.messages import OrderCreateRequest, TradingStopRequest
from bybit_hybrid.wire.signing import Credentials
from tests.fixtures import frame
from tests.unit.transport.restkit import (
    BASE_URL,
    F16_CURSOR,
    KEY,
    SECRET,
    ManualTime,
    hmac_hex,
    make_client,
    position_list,
    position_row,
    server_time,
)

GET_VECTOR = "fd4f31228a46109dc6673062328693696df9a96c7ff04e6491a45e7f63a0fdd7"
POST_VECTOR = "2df4a0603d69c08d5dea29ba85b46eb7db64ce9e9ebd34a7802a3d69700cb2a1"


def assert_signed_over_sent_bytes(request: RecordedRequest, secret: str = SECRET) -> None:
    """The signature is HMAC over ts + key + recv + exactly the query/body that was sent."""
    sent = request.query if request.method == "GET" else request.body_text
    payload = (
        f"{request.header('X-BAPI-TIMESTAMP')}{request.header('X-BAPI-API-KEY')}"
        f"{request.header('X-BAPI-RECV-WINDOW')}{sent}"
    )
    assert request.header("X-BAPI-SIGN") == hmac_hex(secret, payload)


async def test_get_signature_matches_documented_vector() -> None:
    backend = MockBackend().enqueue(envelope_response(position_list([position_row()])))
    await make_client(backend).get_positions(symbol="BTCUSDT")

    (request,) = backend.requests
    assert request.method == "GET"
    assert request.url == f"{BASE_URL}/v5/position/list?category=linear&symbol=BTCUSDT"
    assert request.body is None
    assert request.header("X-BAPI-API-KEY") == KEY
    assert request.header("X-BAPI-TIMESTAMP") == "1700000000000"
    assert request.header("X-BAPI-RECV-WINDOW") == "5000"
    assert request.header("X-BAPI-SIGN-TYPE") == "2"
    assert request.header("X-BAPI-SIGN") == GET_VECTOR


def test_post_vector_over_the_documented_raw_body() -> None:
    # json_body encodes compactly, so the documented spaced body is signed as given.
    body = '{"category": "linear", "symbol": "BTCUSDT", "orderLinkId": "test-order-1"}'
    assert Credentials(KEY, SECRET).rest_signature(1_700_000_000_000, 5000, body) == POST_VECTOR


async def test_post_signs_exactly_the_body_bytes_sent() -> None:
    backend = MockBackend().enqueue(envelope_response({"orderId": "o-1", "orderLinkId": "l-1"}))
    order = OrderCreateRequest(
        category="linear",
        symbol="BTCUSDT",
        side="Sell",
        orderType="Market",
        qty="0.01",
        reduceOnly=True,
        orderLinkId="test-order-1",
    )
    assert await make_client(backend).create_order(order) == "o-1"

    (request,) = backend.requests
    assert request.method == "POST"
    assert request.url == f"{BASE_URL}/v5/order/create"
    assert request.body == json_body(order).encode()
    assert request.header("Content-Type") == "application/json"
    assert json.loads(request.body_text)["orderLinkId"] == "test-order-1"
    assert_signed_over_sent_bytes(request)


async def test_trading_stop_body_and_signature() -> None:
    backend = MockBackend().enqueue(frame_response("F17"))
    stop = TradingStopRequest(
        category="linear",
        symbol="BTCUSDT",
        positionIdx=0,
        tpslMode="Full",
        stopLoss="64100",
        slTriggerBy="MarkPrice",
    )
    await make_client(backend).set_trading_stop(stop)

    (request,) = backend.requests
    assert request.path == "/v5/position/trading-stop"
    assert json.loads(request.body_text) == {
        "category": "linear",
        "symbol": "BTCUSDT",
        "positionIdx": 0,
        "tpslMode": "Full",
        "stopLoss": "64100",
        "slTriggerBy": "MarkPrice",
    }
    assert_signed_over_sent_bytes(request)


def frame_response(name: str) -> HttpResponse:
    return HttpResponse(200, {"Content-Type": "application/json"}, frame(name))


async def test_f16_cursor_with_percent_goes_back_verbatim_and_signed_identically() -> None:
    backend = MockBackend()
    backend.enqueue(frame_response("F16"))  # USDT page 1, cursor with %-escapes
    backend.enqueue(envelope_response(position_list([position_row("ETHUSDT")]), time_ms=5))
    backend.enqueue(envelope_response(position_list([position_row("BTCPERP", 2, side="Sell")])))
    page = await make_client(backend).get_positions()

    queries = [request.query for request in backend.requests]
    assert queries == [
        "category=linear&settleCoin=USDT&limit=200",
        f"category=linear&settleCoin=USDT&limit=200&cursor={F16_CURSOR}",
        "category=linear&settleCoin=USDC&limit=200",
    ]
    assert backend.requests[1].url.endswith("cursor=BTCUSDT%3A0%2CBTCUSDT%3A0")
    for request in backend.requests:
        assert_signed_over_sent_bytes(request)
    assert [p.key for p in page.positions] == [
        PositionKey("BTCUSDT", 0),
        PositionKey("ETHUSDT", 0),
        PositionKey("BTCPERP", 2),
    ]
    assert page.response_time_ms == 5  # the oldest page bounds the snapshot's age


async def test_rest_rows_become_domain_snapshots() -> None:
    backend = MockBackend().enqueue(frame_response("F16"))
    backend.enqueue(envelope_response(position_list([])), envelope_response(position_list([])))
    page = await make_client(backend).get_positions()

    (btc,) = page.positions
    assert btc.side is Side.BUY
    assert btc.size == Decimal("0.01")
    assert btc.entry_price == Decimal("65000")  # REST avgPrice
    assert btc.stop_loss == Decimal("63700")
    assert btc.take_profit is None  # "0" means unset
    assert btc.source is Source.REST
    assert btc.exchange_ts_ms == 1762199130000


async def test_symbol_query_keeps_flat_rows() -> None:
    flat = position_row("BTCUSDT", 2, side="", size="0", avgPrice="0")
    rows = [position_row("BTCUSDT", 1), flat]
    backend = MockBackend().enqueue(envelope_response(position_list(rows)))
    page = await make_client(backend).get_positions(symbol="BTCUSDT")
    assert [(p.key.idx, p.is_open) for p in page.positions] == [(1, True), (2, False)]


async def test_custom_settle_coins_are_paged_in_order() -> None:
    backend = MockBackend(handler=lambda _: envelope_response(position_list([])))
    await make_client(backend).get_positions(("USDC",))
    assert [r.query for r in backend.requests] == ["category=linear&settleCoin=USDC&limit=200"]


async def test_a_repeated_cursor_stops_paging() -> None:
    backend = MockBackend(handler=lambda _: envelope_response(position_list([], "abc%3D")))
    with pytest.raises(PaginationError, match=r"/v5/position/list repeated cursor 'abc%3D'"):
        await make_client(backend).get_positions(("USDT",))
    assert len(backend.requests) == 2


async def test_instruments_are_paged_with_limit_1000() -> None:
    def instrument(symbol: str) -> dict[str, object]:
        return {
            "symbol": symbol,
            "status": "Trading",
            "settleCoin": "USDT",
            "priceFilter": {"tickSize": "0.10"},
            "lotSizeFilter": {"qtyStep": "0.001", "minOrderQty": "0.001"},
        }

    backend = MockBackend().enqueue(
        envelope_response({"list": [instrument("BTCUSDT")], "nextPageCursor": "c%2F1"}),
        envelope_response({"list": [instrument("ETHUSDT")], "nextPageCursor": ""}),
    )
    instruments = await make_client(backend).get_instruments()

    assert sorted(instruments) == ["BTCUSDT", "ETHUSDT"]
    assert instruments["BTCUSDT"].tick_size == Decimal("0.10")
    assert [r.query for r in backend.requests] == [
        "category=linear&limit=1000",
        "category=linear&limit=1000&cursor=c%2F1",
    ]
    assert all(r.header("X-BAPI-SIGN") is None for r in backend.requests)


async def test_public_calls_work_without_credentials_and_are_unsigned() -> None:
    ticker = {"symbol": "BTCUSDT", "markPrice": "65120.5", "lastPrice": "65121", "indexPrice": ""}
    backend = MockBackend().enqueue(envelope_response({"list": [ticker]}, time_ms=42))
    client = BybitRestClient(BASE_URL, None, backend=backend)
    (update,) = await client.get_tickers("BTCUSDT")

    assert update.mark_price == Decimal("65120.5")
    assert update.index_price is None
    assert update.is_snapshot
    assert update.ts_ms == 42
    (request,) = backend.requests
    assert request.query == "category=linear&symbol=BTCUSDT"
    assert not any(name.startswith("X-BAPI") for name in request.headers)


async def test_signed_call_without_credentials_fails_before_sending() -> None:
    backend = MockBackend()
    client = BybitRestClient(BASE_URL, None, backend=backend)
    with pytest.raises(BybitError, match="/v5/position/list needs api credentials"):
        await client.get_positions()
    assert backend.requests == []


async def test_sync_clock_uses_the_request_midpoint() -> None:
    manual = ManualTime()

    def answer(_: RecordedRequest) -> HttpResponse:
        manual.now_s += 0.2  # the round trip takes 200 ms of local time
        return envelope_response(server_time(1_700_000_005_000))

    backend = MockBackend(handler=answer)
    client = make_client(backend, manual)
    assert await client.sync_clock() == 1_700_000_005_000 - 1_700_000_000_100
    assert client.clock_offset_ms == 4900

    backend.handler = None
    backend.enqueue(envelope_response(position_list([])))
    await client.get_positions(symbol="BTCUSDT")
    local_ms = round(manual.now_s * 1000)
    assert backend.requests[-1].header("X-BAPI-TIMESTAMP") == str(local_ms + 4900)


async def test_server_time_prefers_nanoseconds() -> None:
    body = envelope_response(server_time(1_700_000_001_234), time_ms=1_700_000_001_300)
    client = make_client(MockBackend().enqueue(body))
    assert await client.server_time_ms() == 1_700_000_001_234
