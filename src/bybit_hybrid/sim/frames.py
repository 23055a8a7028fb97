"""Builders for the sim's outgoing WebSocket frames, in Bybit's exact public/private shapes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec
from aiohttp import web

_encoder = msgspec.json.Encoder()

# `simSendUs` (benchmark-only, `SimConfig.stamp_send_us`): frames are built once per tick with
# this placeholder value, and each connection's writer swaps in its own send time.
SEND_STAMP_PLACEHOLDER = "#SEND_US#"
SEND_STAMP_TEXT = '"#SEND_US#"'


def encode(obj: Any) -> str:
    """Compact JSON text, as Bybit sends it."""
    return _encoder.encode(obj).decode()


def public_reply(conn_id: str, op: str, req_id: Any, success: bool, ret_msg: str = "") -> str:
    """Public linear reply: req_id is always present ("" when the request had none)."""
    return encode(
        {
            "success": success,
            "ret_msg": ret_msg,
            "conn_id": conn_id,
            "req_id": "" if req_id is None else req_id,
            "op": op,
        }
    )


def public_pong(conn_id: str, req_id: Any) -> str:
    """Public linear pong: op stays "ping" and ret_msg is "pong"."""
    return public_reply(conn_id, "ping", req_id, True, "pong")


def private_reply(conn_id: str, op: str, req_id: Any, success: bool, ret_msg: str = "") -> str:
    """Private reply (F01/F02/F06): req_id only when the request carried one."""
    body: dict[str, Any] = {} if req_id is None else {"req_id": req_id}
    body.update({"success": success, "ret_msg": ret_msg, "op": op, "conn_id": conn_id})
    return encode(body)


def private_pong(conn_id: str, req_id: Any, now_ms: int) -> str:
    """Private pong (F04): op "pong", args [server ms as a string], no success/ret_msg."""
    body: dict[str, Any] = {} if req_id is None else {"req_id": req_id}
    body.update({"op": "pong", "args": [str(now_ms)], "conn_id": conn_id})
    return encode(body)


def decode_error_text(raw: str) -> str:
    """Bybit's Go-decoder message for a frame that is not a JSON object."""
    found = raw[:1] if raw else "EOF"
    excerpt = raw[:32]
    return (
        f"Failed to decode incoming data:readObjectStart: expect {{ or n, but found {found}, "
        f"error found in #1 byte of ...|{excerpt}|..., bigger context ...|{excerpt}|..."
    )


def ticker_frame(symbol: str, kind: str, data: dict[str, Any], cs: int, ts_ms: int) -> str:
    """`tickers.{symbol}` snapshot or delta; data is an object, cs/ts are integers."""
    return encode({"topic": f"tickers.{symbol}", "type": kind, "data": data, "cs": cs, "ts": ts_ms})


def private_push(push_id: str, topic: str, creation_ms: int, rows: Any) -> str:
    """Private topic envelope `{id, topic, creationTime, data:[...]}`."""
    return encode({"id": push_id, "topic": topic, "creationTime": creation_ms, "data": rows})


def envelope(
    ret_code: int,
    ret_msg: str,
    result: dict[str, Any],
    now_ms: int,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    """Bybit's REST envelope (HTTP 200 whatever the retCode) with its Timenow/Ret_code headers."""
    body = {
        "retCode": ret_code,
        "retMsg": ret_msg,
        "result": result,
        "retExtInfo": {},
        "time": now_ms,
    }
    all_headers = {"Timenow": str(now_ms), "Ret_code": str(ret_code), **(headers or {})}
    return web.Response(text=encode(body), content_type="application/json", headers=all_headers)
