"""Bad frames raise WireDecodeError naming the path and showing an excerpt, nothing else."""

from __future__ import annotations

import pytest

from bybit_hybrid.wire.decode import OtherTopic, decode_rest_envelope, decode_ws
from bybit_hybrid.wire.errors import WireDecodeError


def test_malformed_json() -> None:
    with pytest.raises(WireDecodeError, match="malformed JSON") as info:
        decode_ws(b'{"topic": "tickers.BTC')
    assert info.value.excerpt.startswith('{"topic"')


def test_wrong_type_names_path_inside_data() -> None:
    raw = (
        b'{"topic":"position","creationTime":1,'
        b'"data":[{"symbol":"X","positionIdx":"0","side":"","size":"0"}]}'
    )
    with pytest.raises(WireDecodeError) as info:
        decode_ws(raw)
    assert info.value.path == "$.data[0].positionIdx"
    assert "Expected `int`" in str(info.value)


def test_ticker_with_bad_type_field() -> None:
    with pytest.raises(WireDecodeError) as info:
        decode_ws(b'{"topic":"tickers.X","type":"weird","data":{"symbol":"X"},"ts":1}')
    assert info.value.path == "$.type"


def test_ticker_without_ts() -> None:
    with pytest.raises(WireDecodeError, match="no ts"):
        decode_ws(b'{"topic":"tickers.X","type":"delta","data":{"symbol":"X"}}')


def test_frame_without_op_or_topic() -> None:
    with pytest.raises(WireDecodeError, match="neither op nor topic"):
        decode_ws(b'{"hello":1}')


def test_unknown_topic_is_not_an_error() -> None:
    assert decode_ws(b'{"topic":"wallet","data":[]}') == OtherTopic(topic="wallet")


def test_long_excerpt_is_cut() -> None:
    with pytest.raises(WireDecodeError) as info:
        decode_ws(b"[" + b"1," * 500)
    assert len(info.value.excerpt) <= 161


def test_invalid_utf8() -> None:
    with pytest.raises(WireDecodeError):
        decode_ws(b'{"op":"\xff\xfe"}')


def test_rest_envelope_non_json() -> None:
    with pytest.raises(WireDecodeError, match="malformed JSON"):
        decode_rest_envelope(b"<html>502 Bad Gateway</html>")
