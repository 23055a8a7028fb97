"""Recorded frames with our own req_ids swapped in, and sessions on a manual clock."""

from __future__ import annotations

import json
import random

from bybit_hybrid.protocol.session import ConnectionSession, SessionConfig
from bybit_hybrid.protocol.subscriptions import (
    SubscriptionConfig,
    SubscriptionSet,
    private_subscriptions,
)
from bybit_hybrid.wire.decode import WsMessage, decode_ws
from bybit_hybrid.wire.signing import Credentials
from tests.fixtures import frame

T0 = 1_700_000_000.0  # the manual clock's epoch, in seconds
CREDENTIALS = Credentials("test_api_key", "test_secret")


def recorded(name: str, req_id: str | None = None) -> WsMessage:
    """Decodes fixture `name`; `req_id` replaces the echoed one (the rest stays byte-exact)."""
    raw = frame(name)
    if req_id is not None:
        echoed = json.loads(raw)["req_id"]
        for spacing in ('"req_id":', '"req_id": '):
            raw = raw.replace(f'{spacing}"{echoed}"'.encode(), f'{spacing}"{req_id}"'.encode())
    return decode_ws(raw)


def reply(op: str, req_id: str, *, ok: bool = True, ret_msg: str = "") -> WsMessage:
    """A public-shaped op reply (F05/F07 shape) for cases no fixture covers."""
    payload = {"success": ok, "ret_msg": ret_msg, "conn_id": "c", "req_id": req_id, "op": op}
    return decode_ws(json.dumps(payload))


def sent(frames: list[str]) -> list[dict[str, object]]:
    return [json.loads(f) for f in frames]


def ops(frames: list[str]) -> list[str]:
    return [str(f["op"]) for f in sent(frames)]


def public_session(
    *topics: str,
    config: SessionConfig | None = None,
    subscription_config: SubscriptionConfig | None = None,
    name: str = "public-1",
    seed: int = 7,
) -> ConnectionSession:
    subscriptions = SubscriptionSet(name, subscription_config)
    for topic in topics:
        subscriptions.add(topic)
    return ConnectionSession(
        name,
        private=False,
        credentials=None,
        config=config or SessionConfig(),
        subscriptions=subscriptions,
        rng=random.Random(seed),
    )


# Bybit's recommended heartbeat (20 s ping, 10 s pong timeout) on the private socket too: the
# lifecycle tests are written against it. The default private heartbeat (3 s + 2 s, issue 19
# F2) is tested with `SessionConfig()` passed explicitly.
PLAIN_HEARTBEAT = SessionConfig(private_ping_interval_s=20.0, private_pong_timeout_s=10.0)


def private_session(config: SessionConfig | None = None, seed: int = 7) -> ConnectionSession:
    return ConnectionSession(
        "private",
        private=True,
        credentials=CREDENTIALS,
        config=config or PLAIN_HEARTBEAT,
        subscriptions=private_subscriptions("private"),
        rng=random.Random(seed),
    )
