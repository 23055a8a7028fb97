"""Every wire message type, valid and broken, through decoding AND the core (manual clock).

Strategies build each Bybit V5 message the client reads — ticker snapshot and delta, position
push, operation replies (subscribe/unsubscribe/auth), both pong shapes, and the REST
`position/list` envelope — then mutate it: a field replaced by a wrong type, a huge number,
unicode, an empty string or a non-finite decimal; a field deleted; the text truncated; junk
spliced in. Each frame goes through `HybridCore.on_frame` (REST bodies through the decode ->
convert -> `on_positions` path the REST client takes). Nothing may raise, each frame is counted
as bad at most once and reported by exactly one `BadFrame`, a frame that is not even JSON is
always counted, and the book stays sound: unique keys, open sizes > 0, Decimal marks and prices.
"""

from __future__ import annotations

import json
import random
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bybit_hybrid.protocol.hybrid import PRIVATE, BadFrame, FetchPositions, HybridConfig, HybridCore
from bybit_hybrid.protocol.session import SessionState
from bybit_hybrid.wire.convert import position_from_rest, position_from_ws
from bybit_hybrid.wire.decode import decode_rest_envelope, decode_result
from bybit_hybrid.wire.errors import WireDecodeError
from bybit_hybrid.wire.messages import PositionListResult, WsPosition
from bybit_hybrid.wire.signing import Credentials
from tests.fixtures import frame

T0 = 1_762_199_126.0
PUB = "public-1"
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")

symbols = st.sampled_from(SYMBOLS)
prices = st.decimals(min_value=Decimal("0.0001"), max_value=Decimal("1e6"), places=4).map(str)
sizes = st.decimals(min_value=Decimal("0"), max_value=Decimal("1e4"), places=3).map(str)
ints = st.integers(min_value=0, max_value=2**53)
weird = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.sampled_from(
        [
            "",
            "NaN",
            "sNaN",
            "Infinity",
            "-Infinity",
            "1e999999",
            "-1",
            "-0",
            "9" * 400,
            "0x10",
            "1_000",
            "١٢٣",
            "𝟙𝟚",
            "\u0000",
            "Buy\u200b",
        ]
    ),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)


@st.composite
def ticker(draw: st.DrawFn) -> dict[str, Any]:
    data = {"symbol": draw(symbols), "markPrice": draw(prices), "lastPrice": draw(prices)}
    if draw(st.booleans()):
        del data["markPrice"]
    return {
        "topic": f"tickers.{data['symbol']}",
        "type": draw(st.sampled_from(["snapshot", "delta"])),
        "data": data,
        "cs": draw(ints),
        "ts": draw(ints),
    }


@st.composite
def position_row(draw: st.DrawFn, rest: bool = False) -> dict[str, Any]:
    row = {
        "symbol": draw(symbols),
        "positionIdx": draw(st.sampled_from([0, 1, 2])),
        "side": draw(st.sampled_from(["Buy", "Sell", ""])),
        "size": draw(sizes),
        "avgPrice" if rest else "entryPrice": draw(prices),
        "markPrice": draw(prices),
        "seq": draw(ints),
        "updatedTime": str(draw(ints)),
        "stopLoss": draw(st.sampled_from(["", "0"]) | prices),
        "takeProfit": draw(st.sampled_from(["", "0"]) | prices),
        "leverage": "10",
        "positionStatus": "Normal",
    }
    return row


@st.composite
def position_push(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "id": draw(st.text(max_size=8)),
        "topic": "position",
        "creationTime": draw(ints),
        "data": draw(st.lists(position_row(), min_size=1, max_size=3)),
    }


@st.composite
def op_reply(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "success": draw(st.booleans()),
        "ret_msg": draw(st.sampled_from(["", "error:handler not found,topic:tickers.X"])),
        "op": draw(st.sampled_from(["subscribe", "unsubscribe", "auth"])),
        "conn_id": draw(st.text(max_size=8)),
        "req_id": draw(st.text(max_size=8)),
    }


@st.composite
def pong(draw: st.DrawFn) -> dict[str, Any]:
    if draw(st.booleans()):
        return {"success": True, "ret_msg": "pong", "conn_id": "c", "req_id": "", "op": "ping"}
    return {"req_id": "", "op": "pong", "args": [str(draw(ints))], "conn_id": "c"}


@st.composite
def rest_envelope(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "retCode": draw(st.sampled_from([0, 0, 0, 10002, 10006])),
        "retMsg": "OK",
        "result": {
            "list": draw(st.lists(position_row(rest=True), max_size=3)),
            "nextPageCursor": "",
            "category": "linear",
        },
        "retExtInfo": {},
        "time": draw(ints),
    }


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for k, v in value.items():
            found += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found += _paths(v, (*prefix, i))
    return found


@st.composite
def mutated(draw: st.DrawFn, base: st.SearchStrategy[dict[str, Any]]) -> tuple[str, bool]:
    """A message as text and whether it is certainly not JSON (must be counted bad)."""
    message = draw(base)
    how = draw(st.sampled_from(["valid", "replace", "delete", "truncate", "splice"]))
    paths = _paths(message)
    if how in ("replace", "delete") and paths:
        path = draw(st.sampled_from(paths))
        parent = message
        for part in path[:-1]:
            parent = parent[part]
        if how == "replace":
            parent[path[-1]] = draw(weird)
        elif isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent.pop(path[-1])
    text = json.dumps(message, ensure_ascii=draw(st.booleans()))
    if how == "truncate":
        return text[: draw(st.integers(0, len(text) - 1))], True
    if how == "splice":
        at = draw(st.integers(0, len(text)))
        return text[:at] + draw(st.text(min_size=1, max_size=6)) + text[at:], False
    return text, False


def _live_core() -> HybridCore:
    """Both sockets LIVE, position confirmed, BTCUSDT long and ETHUSDT short in the book."""
    core = HybridCore(Credentials("key", "secret"), HybridConfig(), random.Random(7))
    core.start_connect(PRIVATE, T0)
    core.on_open(PRIVATE, T0)
    core.take_outbox(PRIVATE)
    core.on_frame(PRIVATE, frame("F01"), T0)  # auth ok
    _ack_all(core, PRIVATE)
    core.start_connect(PUB, T0)
    core.on_open(PUB, T0)
    rows = [
        WsPosition(symbol="BTCUSDT", positionIdx=0, side="Buy", size="0.01", entryPrice="65000"),
        WsPosition(symbol="ETHUSDT", positionIdx=0, side="Sell", size="0.1", entryPrice="3000"),
    ]
    request = [r for r in core.take_rest_requests() if isinstance(r, FetchPositions)][-1]
    core.on_positions(
        request.request_id,
        [position_from_ws(r, 1) for r in rows],
        requested_at=T0,
        response_ts_ms=1,
        now=T0,
    )
    _ack_all(core, PUB)
    core.take_events()
    assert core.session(PRIVATE).state is SessionState.LIVE
    return core


def _ack_all(core: HybridCore, name: str) -> None:
    for raw in core.take_outbox(name):
        request = json.loads(raw)
        if request.get("op") in ("subscribe", "unsubscribe"):
            reply = {
                "success": True,
                "ret_msg": "",
                "op": request["op"],
                "req_id": request["req_id"],
            }
            core.on_frame(name, json.dumps(reply), T0)


def _assert_book_sound(core: HybridCore) -> None:
    views = core.book.views()
    keys = [v.key for v in views]
    assert len(keys) == len(set(keys)), keys
    for view in views:
        assert isinstance(view.size, Decimal) and view.size.is_finite()
        if view.status != "closed":
            assert view.size > 0, view
        for price in (view.entry_price, view.mark_price, view.stop_loss, view.take_profit):
            assert price is None or (isinstance(price, Decimal) and price.is_finite()), view
    assert set(core.book.open_symbols()) == {k.symbol for k in core.book.open_keys()}


def _bad_count(core: HybridCore) -> int:
    return sum(core.stats.bad_frames.values())


def _feed(core: HybridCore, name: str, text: str, now: float, must_be_bad: bool) -> None:
    before = _bad_count(core)
    core.on_frame(name, text.encode() if len(text) % 2 else text, now)
    counted = _bad_count(core) - before
    reported = [e for e in core.take_events() if isinstance(e, BadFrame)]
    assert counted in (0, 1), counted
    assert len(reported) == counted, (reported, counted)
    if must_be_bad:
        assert counted == 1, text
    _assert_book_sound(core)


WS_MESSAGES = {
    "ticker": (PUB, ticker()),
    "position": (PRIVATE, position_push()),
    "op": (PRIVATE, op_reply()),
    "pong": (PUB, pong()),
}
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(
    st.lists(
        st.sampled_from(sorted(WS_MESSAGES)).flatmap(
            lambda kind: st.tuples(
                st.just(WS_MESSAGES[kind][0]) | st.sampled_from([PUB, PRIVATE]),
                mutated(WS_MESSAGES[kind][1]),
            )
        ),
        min_size=1,
        max_size=8,
    )
)
def test_ws_frames_never_crash_or_corrupt_the_core(
    frames: list[tuple[str, tuple[str, bool]]],
) -> None:
    core = _live_core()
    now = T0
    for name, (text, must_be_bad) in frames:
        now += 0.05
        _feed(core, name, text, now, must_be_bad)
        core.tick(now)
        core.take_events()
        _assert_book_sound(core)


@FUZZ
@given(mutated(rest_envelope()))
def test_rest_bodies_never_crash_or_corrupt_the_core(body: tuple[str, bool]) -> None:
    """The REST client's path: envelope -> result -> rows -> core, failures -> on_rest_failed."""
    core = _live_core()
    text, must_be_bad = body
    try:
        envelope = decode_rest_envelope(text)
        if envelope.retCode != 0:
            raise WireDecodeError(f"retCode {envelope.retCode}", text, "$.retCode")
        result = decode_result(envelope, PositionListResult)
        snapshots = [position_from_rest(row, envelope.time) for row in result.items]
    except WireDecodeError as exc:
        core.on_rest_failed(0, str(exc), T0 + 1)
    else:
        assert not must_be_bad, text
        core.on_positions(0, snapshots, requested_at=T0, response_ts_ms=1, now=T0 + 1, reason="f")
    core.take_events()
    _assert_book_sound(core)
