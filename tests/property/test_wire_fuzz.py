"""Any bytes either decode to a typed message or raise WireDecodeError — nothing else."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from bybit_hybrid.wire.convert import position_from_ws, ticker_from_wire
from bybit_hybrid.wire.decode import PositionMessage, TickerMessage, decode_ws
from bybit_hybrid.wire.errors import WireDecodeError
from tests.fixtures import FIXTURES

SEEDS = [p.read_bytes() for p in sorted(FIXTURES.glob("F*.json"))]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)
field_names = st.sampled_from(
    [
        "op",
        "success",
        "ret_msg",
        "topic",
        "type",
        "data",
        "ts",
        "cs",
        "args",
        "req_id",
        "creationTime",
        "retCode",
        "symbol",
        "size",
        "markPrice",
        "positionIdx",
        "seq",
    ]
)


def _decode_and_convert(payload: bytes) -> None:
    try:
        msg = decode_ws(payload)
        if isinstance(msg, TickerMessage):
            ticker_from_wire(msg)
        elif isinstance(msg, PositionMessage):
            for row in msg.data:
                position_from_ws(row, msg.creation_time_ms)
    except WireDecodeError:
        pass


@settings(max_examples=400)
@given(st.binary(max_size=300))
def test_random_bytes(payload: bytes) -> None:
    _decode_and_convert(payload)


@settings(max_examples=400)
@given(st.sampled_from(SEEDS), st.integers(0, 2000), st.binary(max_size=8))
def test_mutated_fixtures(seed: bytes, at: int, junk: bytes) -> None:
    at %= len(seed)
    _decode_and_convert(seed[:at] + junk + seed[at + len(junk) :])
    _decode_and_convert(seed[:at])  # truncated


@settings(max_examples=400)
@given(st.sampled_from(SEEDS), field_names, json_values)
def test_fixture_with_field_replaced(seed: bytes, name: str, value: object) -> None:
    doc = json.loads(seed)
    if name == "data":
        doc[name] = value
    elif isinstance(doc.get("data"), list) and doc["data"] and isinstance(doc["data"][0], dict):
        doc["data"][0][name] = value
    elif isinstance(doc.get("data"), dict):
        doc["data"][name] = value
    else:
        doc[name] = value
    _decode_and_convert(json.dumps(doc).encode())
