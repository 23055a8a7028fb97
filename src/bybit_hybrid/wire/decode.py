"""Decoding of Bybit WebSocket frames and REST bodies into typed messages; decoders built once.

Every failure is a `WireDecodeError` naming the path and showing an excerpt, never another
exception type, so the caller can count it, log it once and keep the stream running.
"""

from __future__ import annotations

from typing import Any, Final, Literal, TypeVar

import msgspec

from bybit_hybrid.wire.errors import WireDecodeError
from bybit_hybrid.wire.messages import RestEnvelope, TickerData, WsEnvelope, WsPosition

T = TypeVar("T")


class Pong(msgspec.Struct, frozen=True):
    """A heartbeat reply. Public: op "ping" + ret_msg "pong"; private: op "pong" + args[ts]."""

    private_shape: bool
    req_id: str | None
    conn_id: str | None
    server_time_ms: int | None


class OpReply(msgspec.Struct, frozen=True):
    """A reply to auth/subscribe/unsubscribe (or to an op Bybit did not understand)."""

    op: str
    success: bool
    ret_msg: str
    req_id: str | None
    conn_id: str | None


class TickerMessage(msgspec.Struct, frozen=True):
    """A `tickers.{symbol}` push: a full snapshot or a delta of changed fields only.

    Decoded straight from a well-formed frame in one typed pass (the hot path: most frames are
    these), so the fields keep the frame's layout; anything unusual takes the general path.
    """

    topic: str
    type: Literal["snapshot", "delta"]
    ts_ms: int = msgspec.field(name="ts")
    data: TickerData
    cs: int | None = None

    @property
    def is_snapshot(self) -> bool:
        return self.type == "snapshot"


class PositionMessage(msgspec.Struct, frozen=True):
    """A private `position` push: the rows that changed (no snapshot is ever sent)."""

    topic: str
    id: str | None
    creation_time_ms: int | None
    data: list[WsPosition]


class OtherTopic(msgspec.Struct, frozen=True):
    """A push on a topic the product does not consume (order, execution, wallet, unknown)."""

    topic: str


WsMessage = Pong | OpReply | TickerMessage | PositionMessage | OtherTopic


_ENVELOPE: Final = msgspec.json.Decoder(WsEnvelope)
_TICKER_DATA: Final = msgspec.json.Decoder(TickerData)
_POSITIONS: Final = msgspec.json.Decoder(list[WsPosition])
_REST_ENVELOPE: Final = msgspec.json.Decoder(RestEnvelope)
_RESULT_DECODERS: dict[type[Any], msgspec.json.Decoder[Any]] = {}
_TICKER_TYPES: Final = {"snapshot": True, "delta": False}
_TICKER_FRAME: Final = msgspec.json.Decoder(TickerMessage)
# Bybit (and the simulator) put `topic` first; other layouts take the general path.
_TICKER_PREFIX_STR: Final = '{"topic":"tickers.'
_TICKER_PREFIX_BYTES: Final = _TICKER_PREFIX_STR.encode()


def _wrap(exc: Exception, payload: bytes | str, prefix: str = "$") -> WireDecodeError:
    """Turns a msgspec error into ours, keeping msgspec's path (`- at `$.x``) as `path`."""
    if isinstance(exc, UnicodeDecodeError):
        return WireDecodeError("payload is not UTF-8", payload)
    text = str(exc)
    path = None
    if " - at `" in text:
        text, _, raw_path = text.partition(" - at `")
        path = prefix + raw_path.rstrip("`")[1:]
    reason = text if isinstance(exc, msgspec.ValidationError) else f"malformed JSON ({text})"
    return WireDecodeError(reason, payload, path)


def _decode(decoder: msgspec.json.Decoder[T], payload: bytes | str, prefix: str = "$") -> T:
    try:
        return decoder.decode(payload)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise _wrap(exc, payload, prefix) from None


def decode_ws(payload: bytes | str) -> WsMessage:
    """Decodes one WebSocket frame from either Bybit socket."""
    if payload.startswith(
        _TICKER_PREFIX_STR if payload.__class__ is str else _TICKER_PREFIX_BYTES  # type: ignore[arg-type]
    ):
        # One typed pass over a well-formed ticker push (inline: most frames are these); anything
        # unusual (bad JSON, wrong types, missing fields) takes the general path, which names it.
        try:
            return _TICKER_FRAME.decode(payload)
        except (msgspec.DecodeError, UnicodeDecodeError):
            pass
    elif payload in (b"pong", "pong"):
        return Pong(private_shape=False, req_id=None, conn_id=None, server_time_ms=None)
    env = _decode(_ENVELOPE, payload)
    if env.topic is not None:
        return _decode_push(env, payload)
    if env.op is not None or env.success is not None or env.retCode is not None:
        return _decode_reply(env, payload)
    raise WireDecodeError("frame has neither op nor topic", payload)


def _decode_reply(env: WsEnvelope, payload: bytes | str) -> Pong | OpReply:
    op = env.op or ""
    if op == "pong" or (op == "ping" and env.ret_msg == "pong"):
        return Pong(
            private_shape=op == "pong",
            req_id=env.req_id or None,
            conn_id=env.conn_id,
            server_time_ms=_first_int(env.args),
        )
    if env.success is None and env.retCode is None:
        raise WireDecodeError(f"reply to op {op!r} has no success flag", payload, "$.success")
    success = env.success if env.success is not None else env.retCode == 0
    ret_msg = env.ret_msg if env.ret_msg is not None else (env.retMsg or "")
    return OpReply(op=op, success=success, ret_msg=ret_msg, req_id=env.req_id, conn_id=env.conn_id)


def _first_int(args: list[str | int | float] | None) -> int | None:
    if not args:
        return None
    try:
        return int(args[0])
    except (TypeError, ValueError):
        return None


def _decode_push(env: WsEnvelope, payload: bytes | str) -> WsMessage:
    topic = env.topic or ""
    if topic.startswith("tickers."):
        return _decode_ticker(env, topic, payload)
    if topic == "position" or topic.startswith("position."):
        if not env.data:
            raise WireDecodeError("position push has no data", payload, "$.data")
        rows = _decode(_POSITIONS, env.data, "$.data")
        return PositionMessage(topic=topic, id=env.id, creation_time_ms=env.creationTime, data=rows)
    return OtherTopic(topic=topic)


def _decode_ticker(env: WsEnvelope, topic: str, payload: bytes | str) -> TickerMessage:
    is_snapshot = _TICKER_TYPES.get(env.type or "")
    if is_snapshot is None:
        raise WireDecodeError(
            f"ticker type {env.type!r} is not snapshot or delta", payload, "$.type"
        )
    if not env.data:
        raise WireDecodeError("ticker push has no data", payload, "$.data")
    if env.ts is None:
        raise WireDecodeError("ticker push has no ts", payload, "$.ts")
    data = _decode(_TICKER_DATA, env.data, "$.data")
    kind: Literal["snapshot", "delta"] = "snapshot" if is_snapshot else "delta"
    return TickerMessage(topic=topic, type=kind, ts_ms=env.ts, data=data, cs=env.cs)


def decode_rest_envelope(body: bytes | str) -> RestEnvelope:
    """Decodes the common REST body; errors come with HTTP 200 so the body is always read."""
    return _decode(_REST_ENVELOPE, body)


def decode_result(envelope: RestEnvelope, result_type: type[T]) -> T:
    """Decodes a successful envelope's `result` as `result_type`."""
    if not envelope.result:
        raise WireDecodeError("response has no result", b"", "$.result")
    decoder = _RESULT_DECODERS.get(result_type)
    if decoder is None:
        decoder = _RESULT_DECODERS.setdefault(result_type, msgspec.json.Decoder(result_type))
    return _decode(decoder, envelope.result, "$.result")  # type: ignore[no-any-return]
