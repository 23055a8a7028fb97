"""Builders for the frames a client sends on Bybit's sockets, and REST query/body strings."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final
from urllib.parse import quote

import msgspec

from bybit_hybrid.wire.signing import Credentials

_ENCODER: Final = msgspec.json.Encoder(decimal_format="string")
# Characters left as they are in query values. "%" is kept so a cursor Bybit returned
# percent-encoded (`21%3A0%2C21%3A0`) goes back verbatim: the signed query must equal the sent one.
_QUERY_SAFE: Final = "%-._~"


def _frame(payload: dict[str, object]) -> str:
    return _ENCODER.encode(payload).decode()


def auth_frame(credentials: Credentials, expires_ms: int, req_id: str | None = None) -> str:
    """`{"op":"auth","args":[key, expires_ms, signature]}`; expires is in ms and must be future."""
    args: list[object] = [
        credentials.api_key,
        expires_ms,
        credentials.ws_auth_signature(expires_ms),
    ]
    payload: dict[str, object] = {"op": "auth", "args": args}
    if req_id is not None:
        payload["req_id"] = req_id
    return _frame(payload)


def ping_frame(req_id: str | None = None) -> str:
    """The JSON heartbeat, identical on public and private sockets."""
    return _frame({"op": "ping"} if req_id is None else {"req_id": req_id, "op": "ping"})


def subscribe_frame(topics: Sequence[str], req_id: str) -> str:
    return _frame({"req_id": req_id, "op": "subscribe", "args": list(topics)})


def unsubscribe_frame(topics: Sequence[str], req_id: str) -> str:
    return _frame({"req_id": req_id, "op": "unsubscribe", "args": list(topics)})


def query_string(params: Mapping[str, str | int]) -> str:
    """A GET query in the given order, values percent-encoded except already-encoded cursors."""
    return "&".join(
        f"{name}={quote(str(value), safe=_QUERY_SAFE)}" for name, value in params.items()
    )


def json_body(body: msgspec.Struct | Mapping[str, object]) -> str:
    """The exact POST body string; sign and send this same string, never re-serialise."""
    return _ENCODER.encode(body).decode()
