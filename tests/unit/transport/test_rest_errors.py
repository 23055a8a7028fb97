"""retCode and HTTP failures become typed errors; retries wait exactly as documented."""

from __future__ import annotations

import logging

import pytest

from bybit_hybrid.transport.errors import (
    ApiServerError,
    AuthError,
    BybitApiError,
    InvalidRequestError,
    MalformedResponseError,
    NotModifiedError,
    RateLimitedError,
    ServerError,
    TimestampError,
    TransportError,
    ZeroPositionError,
    api_error,
)
from bybit_hybrid.transport.http import (
    HttpBackendError,
    HttpResponse,
    MockBackend,
    envelope_response,
)
from bybit_hybrid.transport.ratelimit import RateLimitStatus
from bybit_hybrid.transport.rest import is_not_modified
from bybit_hybrid.wire.messages import OrderCreateRequest, TradingStopRequest
from tests.fixtures import frame
from tests.unit.transport.restkit import ManualTime, make_client, position_list, server_time

STOP = TradingStopRequest(
    category="linear", symbol="BTCUSDT", positionIdx=0, tpslMode="Full", stopLoss="64100"
)
ORDER = OrderCreateRequest(
    category="linear", symbol="BTCUSDT", side="Sell", orderType="Market", qty="0.01"
)
TIMESTAMP_10002 = (
    "invalid request, please check your server timestamp or recv_window param. "
    "req_timestamp[1696396708819],server_timestamp[1696396707813],recv_window[15000]"
)


def fixture_response(name: str) -> HttpResponse:
    return HttpResponse(200, {}, frame(name))


def failure(code: int, msg: str, headers: dict[str, str] | None = None) -> HttpResponse:
    return envelope_response(ret_code=code, ret_msg=msg, headers=headers)


def html(status: int) -> HttpResponse:
    return HttpResponse(status, {"Content-Type": "text/html"}, b"<html>bad gateway</html>")


# --- mapping --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "msg", "expected"),
    [
        (10001, "can not set tp/sl/ts for zero position", ZeroPositionError),
        (10001, "position idx not match position mode", InvalidRequestError),
        (10001, "params error: symbol invalid", InvalidRequestError),
        (10002, TIMESTAMP_10002, TimestampError),
        (10003, "API key is invalid.", AuthError),
        (10004, "error sign! origin_string[x]", AuthError),
        (10005, "Permission denied", AuthError),
        (10006, "Too many visits!", RateLimitedError),
        (10010, "Unmatched IP, please check your API key's bound IP addresses.", AuthError),
        (10016, "Server error", ApiServerError),
        (34040, "not modified", NotModifiedError),
        (110043, "leverage not modified", BybitApiError),
    ],
)
def test_ret_codes_map_to_types(code: int, msg: str, expected: type[BybitApiError]) -> None:
    error = api_error("/v5/x", code, msg)
    assert type(error) is expected
    assert (error.ret_code, error.ret_msg, error.endpoint) == (code, msg, "/v5/x")
    assert str(error).startswith(f"/v5/x failed with retCode {code}: ")


async def test_f18_not_modified_raises_and_apply_treats_it_as_success() -> None:
    backend = MockBackend().enqueue(fixture_response("F18"), fixture_response("F18"))
    client = make_client(backend)
    with pytest.raises(NotModifiedError) as caught:
        await client.set_trading_stop(STOP)
    assert is_not_modified(caught.value)
    assert str(caught.value) == (
        "/v5/position/trading-stop failed with retCode 34040: 'not modified'"
    )
    assert await client.apply_trading_stop(STOP) is False
    assert len(backend.requests) == 2  # never retried


async def test_apply_trading_stop_reports_a_change() -> None:
    client = make_client(MockBackend().enqueue(fixture_response("F17")))
    assert await client.apply_trading_stop(STOP) is True


async def test_f19_zero_position() -> None:
    client = make_client(MockBackend().enqueue(fixture_response("F19")))
    with pytest.raises(ZeroPositionError, match="retCode 10001: 'can not set tp/sl/ts for zero"):
        await client.set_trading_stop(STOP)


async def test_f20_wrong_side_is_an_invalid_request_not_zero_position() -> None:
    client = make_client(MockBackend().enqueue(fixture_response("F20")))
    with pytest.raises(InvalidRequestError) as caught:
        await client.apply_trading_stop(STOP)
    assert not isinstance(caught.value, ZeroPositionError)
    assert "should lower than base_price:68500000??LastPrice" in caught.value.ret_msg


# --- 10002 clock drift ----------------------------------------------------------------------


async def test_10002_resyncs_the_clock_once_and_retries() -> None:
    manual = ManualTime()
    backend = MockBackend()
    backend.enqueue(failure(10002, TIMESTAMP_10002))
    backend.enqueue(envelope_response(server_time(1_700_000_003_000)))
    backend.enqueue(envelope_response(position_list([])))
    client = make_client(backend, manual)
    await client.get_positions(symbol="BTCUSDT")

    assert [r.path for r in backend.requests] == [
        "/v5/position/list",
        "/v5/market/time",
        "/v5/position/list",
    ]
    assert client.clock_offset_ms == 3000
    assert backend.requests[2].header("X-BAPI-TIMESTAMP") == "1700000003000"
    assert manual.sleeps == []


async def test_10002_twice_gives_up_after_one_resync() -> None:
    backend = MockBackend()
    backend.enqueue(failure(10002, TIMESTAMP_10002))
    backend.enqueue(envelope_response(server_time(1_700_000_000_000)))
    backend.enqueue(failure(10002, TIMESTAMP_10002))
    with pytest.raises(TimestampError, match="retCode 10002"):
        await make_client(backend).set_trading_stop(STOP)
    assert len(backend.requests) == 3


# --- 10006 rate limit -----------------------------------------------------------------------


async def test_10006_waits_until_the_reset_header() -> None:
    manual = ManualTime()
    headers = {"X-Bapi-Limit": "10", "X-Bapi-Limit-Status": "0"}
    backend = MockBackend().enqueue(
        failure(
            10006, "Too many visits!", {**headers, "X-Bapi-Limit-Reset-Timestamp": "1700000001500"}
        ),
        fixture_response("F17"),
    )
    await make_client(backend, manual).set_trading_stop(STOP)
    assert manual.sleeps == [1.5]
    assert len(backend.requests) == 2


async def test_10006_without_header_waits_two_seconds_and_long_waits_are_capped() -> None:
    manual = ManualTime()
    far = {"X-Bapi-Limit-Reset-Timestamp": "1700000600000"}
    backend = MockBackend().enqueue(
        failure(10006, "Too many visits!"),
        failure(10006, "Too many visits!", far),
        envelope_response(position_list([])),
    )
    await make_client(backend, manual, max_rate_limit_wait_s=5.0).get_positions(symbol="X")
    assert manual.sleeps == [2.0, 5.0]


async def test_10006_gives_up_after_max_retries_with_reset_time() -> None:
    manual = ManualTime()
    reset = {"X-Bapi-Limit-Reset-Timestamp": "1700000000100"}
    backend = MockBackend(handler=lambda _: failure(10006, "Too many visits!", reset))
    with pytest.raises(RateLimitedError) as caught:
        await make_client(backend, manual, max_retries=2).create_order(ORDER)
    assert caught.value.reset_at_ms == 1_700_000_000_100
    assert "limit resets at 1700000000100 ms" in str(caught.value)
    assert len(backend.requests) == 3
    assert manual.sleeps == [pytest.approx(0.1), 0.0]  # the reset time has passed by then


async def test_rate_limit_headers_are_tracked_per_endpoint() -> None:
    headers = {
        "x-bapi-limit": "50",
        "x-bapi-limit-status": "49",
        "x-bapi-limit-reset-timestamp": "1700000000050",
    }
    backend = MockBackend().enqueue(envelope_response(position_list([]), headers=headers))
    client = make_client(backend)
    await client.get_positions(symbol="BTCUSDT")
    assert client.rate_limits == {
        "/v5/position/list": RateLimitStatus(50, 49, 1_700_000_000_050, 1_700_000_000_000)
    }
    assert client.metrics.responses[("/v5/position/list", 0)] == 1


async def test_client_side_limiter_holds_bursts_to_the_rolling_window_without_real_sleep() -> None:
    manual = ManualTime()
    backend = MockBackend(handler=lambda _: fixture_response("F17"))
    client = make_client(backend, manual)
    for _ in range(12):  # trading-stop allows 10 per rolling second
        await client.set_trading_stop(STOP)
    # The 11th waits for the burst to leave the window, one second plus the jitter margin
    # (not 0.1 s: that put 11 in one second); the 12th then shares the new window with it.
    assert manual.sleeps == [pytest.approx(1.05)]


# --- 5xx, network, malformed bodies ---------------------------------------------------------


async def test_5xx_is_retried_with_exponential_backoff() -> None:
    manual = ManualTime()
    backend = MockBackend().enqueue(html(503), html(502), envelope_response(position_list([])))
    client = make_client(backend, manual)
    await client.get_positions(symbol="BTCUSDT")
    assert manual.sleeps == [0.25, 0.5]
    assert client.metrics.retries["/v5/position/list"] == 2


async def test_5xx_gives_up_after_max_retries() -> None:
    manual = ManualTime()
    backend = MockBackend(handler=lambda _: html(503))
    with pytest.raises(ServerError) as caught:
        await make_client(backend, manual).set_trading_stop(STOP)
    assert str(caught.value) == (
        "/v5/position/trading-stop answered http 503: '<html>bad gateway</html>'"
    )
    assert caught.value.status == 503
    assert manual.sleeps == [0.25, 0.5, 1.0]
    assert len(backend.requests) == 4


async def test_order_create_is_never_retried_once_it_may_have_arrived() -> None:
    backend = MockBackend().enqueue(html(503))
    with pytest.raises(ServerError):
        await make_client(backend).create_order(ORDER)
    timeout = HttpBackendError("timed out", reached_server=True)
    backend.enqueue(timeout)
    with pytest.raises(TransportError, match="/v5/order/create timed out") as caught:
        await make_client(backend).create_order(ORDER)
    assert caught.value.reached_server
    assert len(backend.requests) == 2


async def test_order_create_is_retried_when_the_connection_was_refused() -> None:
    manual = ManualTime()
    backend = MockBackend().enqueue(
        HttpBackendError("could not connect (refused)", reached_server=False),
        ConnectionRefusedError(),
        envelope_response({"orderId": "o-9"}),
    )
    assert await make_client(backend, manual).create_order(ORDER) == "o-9"
    assert manual.sleeps == [0.25, 0.5]
    sent = [r.header("X-BAPI-TIMESTAMP") for r in backend.requests]
    assert sent == ["1700000000000", "1700000000250", "1700000000750"]  # re-signed each try


async def test_network_errors_on_reads_are_retried() -> None:
    backend = MockBackend().enqueue(
        HttpBackendError("timed out", reached_server=True),
        OSError("connection reset"),
        envelope_response(position_list([])),
    )
    client = make_client(backend)
    await client.get_positions(symbol="BTCUSDT")
    assert client.metrics.transport_errors["/v5/position/list"] == 2


async def test_non_json_body_names_endpoint_and_excerpt_and_is_not_retried() -> None:
    backend = MockBackend().enqueue(html(403))
    with pytest.raises(MalformedResponseError) as caught:
        await make_client(backend).get_positions(symbol="BTCUSDT")
    assert isinstance(caught.value, TransportError)
    assert str(caught.value) == (
        "/v5/position/list answered http 403 with a body that is not a bybit envelope: "
        "'<html>bad gateway</html>'"
    )
    assert len(backend.requests) == 1


async def test_a_result_of_the_wrong_shape_is_malformed() -> None:
    backend = MockBackend().enqueue(envelope_response({"list": "nope"}))
    with pytest.raises(MalformedResponseError, match=r"/v5/market/tickers answered an unexpected"):
        await make_client(backend).get_tickers()


async def test_a_row_that_does_not_convert_names_the_endpoint() -> None:
    row = {"symbol": "BTCUSDT", "positionIdx": 0, "side": "Buy", "size": "abc"}
    backend = MockBackend().enqueue(envelope_response(position_list([row])))
    with pytest.raises(MalformedResponseError, match=r"/v5/position/list .*size is not a decimal"):
        await make_client(backend).get_positions(symbol="BTCUSDT")


async def test_retries_are_logged_in_lowercase(caplog: pytest.LogCaptureFixture) -> None:
    backend = MockBackend().enqueue(html(503), envelope_response(position_list([])))
    with caplog.at_level(logging.DEBUG, logger="bybit_hybrid.transport.rest"):
        await make_client(backend).get_positions(symbol="BTCUSDT")
    assert "/v5/position/list retry 1/3 in 0.25 s after: /v5/position/list answered http 503" in (
        caplog.text
    )
