"""Signatures match the documented test vectors; secrets never show in reprs."""

from __future__ import annotations

import json

import pytest

from bybit_hybrid.wire.frames import auth_frame
from bybit_hybrid.wire.signing import Credentials, rest_payload, verify, ws_auth_payload

KEY, SECRET, TS, RECV = "test_api_key", "test_secret", 1700000000000, 5000


def test_ws_auth_vector() -> None:
    creds = Credentials(KEY, SECRET)
    assert (
        creds.ws_auth_signature(TS)
        == "bacffe7500499eb829bb58c45d36d1b3e5ac67c14eaeba91df5e99ccee013925"
    )


def test_rest_get_vector() -> None:
    sig = Credentials(KEY, SECRET).rest_signature(TS, RECV, "category=linear&symbol=BTCUSDT")
    assert sig == "fd4f31228a46109dc6673062328693696df9a96c7ff04e6491a45e7f63a0fdd7"


def test_rest_post_vector() -> None:
    body = '{"category": "linear", "symbol": "BTCUSDT", "orderLinkId": "test-order-1"}'
    sig = Credentials(KEY, SECRET).rest_signature(TS, RECV, body)
    assert sig == "2df4a0603d69c08d5dea29ba85b46eb7db64ce9e9ebd34a7802a3d69700cb2a1"


def test_verify_round_trip() -> None:
    creds = Credentials(KEY, SECRET)
    payload = rest_payload(KEY, TS, RECV, "a=1")
    assert verify(SECRET, payload, creds.sign(payload))
    assert verify(SECRET, payload, creds.sign(payload).upper())
    assert not verify("other", payload, creds.sign(payload))
    assert ws_auth_payload(5) == "GET/realtime5"


def test_auth_frame_matches_documented_request_a01() -> None:
    frame = json.loads(auth_frame(Credentials("HARNESSKEY0001", SECRET), TS, req_id="auth-1"))
    assert frame == {
        "req_id": "auth-1",
        "op": "auth",
        "args": [
            "HARNESSKEY0001",
            TS,
            "bacffe7500499eb829bb58c45d36d1b3e5ac67c14eaeba91df5e99ccee013925",
        ],
    }


def test_secret_never_in_repr_or_str() -> None:
    canary = "CANARY-SECRET-9f8e7d"
    creds = Credentials("abcdefgh", canary)
    for text in (repr(creds), str(creds), f"{creds}", repr([creds])):
        assert canary not in text
        assert "abcdefgh" not in text  # only a prefix of the key is shown


def test_empty_credentials_are_refused() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        Credentials("", "x")
