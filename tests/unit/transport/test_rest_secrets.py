"""The api secret and request signatures never reach error text, reprs or logs; keys are masked."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from bybit_hybrid.transport.errors import AuthError, BybitError
from bybit_hybrid.transport.http import HttpBackendError, HttpResponse, MockBackend, RecordedRequest
from bybit_hybrid.transport.http import envelope_response as envelope
from tests.unit.transport.restkit import make_client

CANARY_KEY = "CANARYKEY0001"
CANARY_SECRET = "canary-secret-7f3a9c"


def echo_everything(status: int, as_json: bool) -> Callable[[RecordedRequest], HttpResponse]:
    """A hostile server that echoes the secret, key and signature back in its answer."""

    def answer(request: RecordedRequest) -> HttpResponse:
        leak = f"{CANARY_SECRET} {CANARY_KEY} {request.header('X-BAPI-SIGN')}"
        if as_json:
            return envelope(ret_code=10004, ret_msg=f"error sign! origin_string[{leak}]")
        return HttpResponse(status, {}, f"<html>{leak}</html>".encode())

    return answer


def assert_clean(error: BaseException, signatures: list[str | None]) -> None:
    texts = [str(error), repr(error), *map(str, error.args), *map(str, vars(error).values())]
    for text in texts:
        assert CANARY_SECRET not in text
        assert CANARY_KEY not in text
        for signature in signatures:
            assert signature and signature not in text


@pytest.mark.parametrize(("status", "as_json"), [(200, True), (200, False), (503, False)])
async def test_echoed_secrets_are_scrubbed(
    status: int, as_json: bool, caplog: pytest.LogCaptureFixture
) -> None:
    backend = MockBackend(handler=echo_everything(status, as_json))
    client = make_client(backend, key=CANARY_KEY, secret=CANARY_SECRET)
    with caplog.at_level(logging.DEBUG), pytest.raises(BybitError) as caught:
        await client.get_positions(symbol="BTCUSDT")
    signatures = [r.header("X-BAPI-SIGN") for r in backend.requests]
    assert_clean(caught.value, signatures)
    assert "CANA…" in str(caught.value)
    assert CANARY_SECRET not in caplog.text
    assert CANARY_KEY not in caplog.text


async def test_10004_keeps_bybit_origin_string_with_the_key_masked() -> None:
    origin = f"1700000000000{CANARY_KEY}5000category=linear&symbol=BTCUSDT"
    backend = MockBackend().enqueue(
        envelope(ret_code=10004, ret_msg=f"error sign! origin_string[{origin}]")
    )
    client = make_client(backend, key=CANARY_KEY, secret=CANARY_SECRET)
    with pytest.raises(AuthError) as caught:
        await client.get_positions(symbol="BTCUSDT")
    assert caught.value.ret_msg == (
        "error sign! origin_string[1700000000000CANA…5000category=linear&symbol=BTCUSDT]"
    )
    assert_clean(caught.value, [backend.requests[0].header("X-BAPI-SIGN")])


async def test_transport_failure_text_is_scrubbed() -> None:
    backend = MockBackend().enqueue(
        HttpBackendError(f"proxy said {CANARY_SECRET}", reached_server=True)
    )
    client = make_client(backend, key=CANARY_KEY, secret=CANARY_SECRET, max_retries=0)
    with pytest.raises(BybitError) as caught:
        await client.get_positions(symbol="BTCUSDT")
    assert_clean(caught.value, [backend.requests[0].header("X-BAPI-SIGN")])


def test_client_repr_masks_credentials() -> None:
    client = make_client(MockBackend(), key=CANARY_KEY, secret=CANARY_SECRET)
    text = repr(client) + str(client)
    assert CANARY_SECRET not in text
    assert CANARY_KEY not in text
    assert "CANA…" in text
