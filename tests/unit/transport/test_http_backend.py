"""The scripted backend, response helpers, the TLS rule of the aiohttp backend, token buckets."""

from __future__ import annotations

import ssl

import pytest

from bybit_hybrid.transport.http import (
    AiohttpBackend,
    HttpResponse,
    MockBackend,
    envelope_response,
    json_response,
)
from bybit_hybrid.transport.ratelimit import EndpointLimiter, RollingWindow, parse_limit_headers
from bybit_hybrid.transport.rest import BybitRestClient


async def test_mock_answers_per_path_first_then_shared_then_handler() -> None:
    backend = MockBackend(handler=lambda _: json_response({"from": "handler"}))
    backend.enqueue(json_response({"from": "path"}), path="/a")
    backend.enqueue(json_response({"from": "shared"}))
    assert backend.pending() == 2

    bodies = [
        (await backend.request("GET", f"https://h{path}?x=%3A", {}, None)).body
        for path in ("/b", "/a", "/a")
    ]
    assert bodies == [b'{"from":"shared"}', b'{"from":"path"}', b'{"from":"handler"}']
    assert backend.requests[0].query == "x=%3A"
    assert backend.pending() == 0


async def test_mock_raises_scripted_exceptions_and_complains_when_empty() -> None:
    backend = MockBackend().enqueue(ConnectionResetError("reset"))
    with pytest.raises(ConnectionResetError):
        await backend.request("POST", "https://h/p", {}, b"{}")
    with pytest.raises(AssertionError, match="no answer for GET https://h/q"):
        await backend.request("GET", "https://h/q", {}, None)


def test_headers_are_read_case_insensitively() -> None:
    response = HttpResponse(200, {"X-Bapi-Limit-Status": "7"}, b"")
    assert response.header("x-bapi-limit-status") == "7"
    assert response.header("missing") is None


def test_envelope_response_has_bybit_shape() -> None:
    body = envelope_response(ret_code=34040, ret_msg="not modified", time_ms=1).body
    assert body == (
        b'{"retCode":34040,"retMsg":"not modified","result":{},"retExtInfo":{},"time":1}'
    )


def test_aiohttp_backend_refuses_a_non_verifying_tls_context() -> None:
    lax = ssl.create_default_context()
    lax.check_hostname = False
    lax.verify_mode = ssl.CERT_NONE
    with pytest.raises(ValueError, match="must verify certificates"):
        AiohttpBackend(tls_context=lax)


async def test_client_closes_only_a_backend_it_created() -> None:
    async with BybitRestClient("https://api.bybit.com/", None) as client:
        assert repr(client) == "BybitRestClient(base_url='https://api.bybit.com', credentials=None)"
    await client.close()  # idempotent


def test_rolling_window_allows_a_burst_then_waits_for_the_window() -> None:
    window = RollingWindow(limit=10)
    assert [window.reserve(0.0) for _ in range(10)] == [0.0] * 10
    assert window.reserve(0.0) == pytest.approx(1.0)  # not 0.1: the burst fills the window
    assert window.reserve(0.0) == pytest.approx(1.0)  # queued beside the previous waiter
    assert window.reserve(10.0) == 0.0  # the window has long emptied


def test_endpoint_limiter_ignores_unlimited_endpoints() -> None:
    limiter = EndpointLimiter({"/v5/a": 1})
    assert limiter.reserve("/v5/a", 0.0) == 0.0
    assert limiter.reserve("/v5/a", 0.0) == pytest.approx(1.05)  # 1 s + jitter margin
    assert limiter.reserve("/v5/b", 0.0) == 0.0


def test_limit_headers_parse_and_tolerate_garbage() -> None:
    assert parse_limit_headers(None, None, None, 5) is None
    status = parse_limit_headers("10", "x", None, 5)
    assert status is not None
    assert (status.limit, status.remaining, status.reset_at_ms) == (10, None, None)
