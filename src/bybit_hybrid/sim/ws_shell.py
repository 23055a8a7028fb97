"""The simulator's WebSocket side: upgrades, auth, ping/pong, subscribe and unsubscribe.

Bybit's answers for every op, on the public and the private path. The connections and their
subscriptions live on the server (`SimServer.connections`, `.subs`), which queues the topic
data itself (ticker deltas, each account's private pushes) on them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from aiohttp import WSMsgType, web

from bybit_hybrid.sim import frames
from bybit_hybrid.sim.accounts import SimAccount
from bybit_hybrid.sim.config import parse_max_active_time
from bybit_hybrid.sim.connections import ConnState, SimConnection
from bybit_hybrid.sim.faults import ConnKind
from bybit_hybrid.wire.signing import verify, ws_auth_payload

if TYPE_CHECKING:
    from bybit_hybrid.sim.server import SimServer

log = logging.getLogger(__name__)

_PRIVATE_TOPICS: Final = frozenset(
    {
        "position",
        "position.linear",
        "order",
        "order.linear",
        "execution",
        "execution.linear",
        "wallet",
    }
)


class WsShell:
    """The WebSocket endpoints of one SimServer."""

    def __init__(self, server: SimServer) -> None:
        self._server = server
        self.config = server.config

    async def public_ws(self, request: web.Request) -> web.StreamResponse:
        return await self._serve_ws(request, ConnKind.PUBLIC, self.config.default_max_active_s)

    async def private_ws(self, request: web.Request) -> web.StreamResponse:
        raw = request.query.get("max_active_time")
        max_active_s = self.config.default_max_active_s
        if raw is not None:
            try:
                max_active_s = parse_max_active_time(raw)
            except ValueError as exc:
                return web.Response(status=400, text=str(exc))
        return await self._serve_ws(request, ConnKind.PRIVATE, max_active_s)

    async def _serve_ws(
        self, request: web.Request, kind: ConnKind, max_active_s: float
    ) -> web.StreamResponse:
        if self._server.faults.state.refusing(time.monotonic()):
            return web.Response(status=503, text="503 Service Temporarily Unavailable")
        ws = web.WebSocketResponse(autoping=False, compress=False, timeout=2.0)
        await ws.prepare(request)
        conn = SimConnection(
            kind=kind,
            conn_id=_new_conn_id(kind),
            ws=ws,
            request=request,
            max_active_s=max_active_s,
            queue_max=self.config.send_queue_max,
            clock_s=time.monotonic,
            delay_ms=lambda: self._server.faults.state.delay_ms,
            stamp_send_us=self.config.stamp_send_us,
        )
        conn.silent = self._server.failover_faults.blackholed(kind)
        self._server.connections.add(conn)
        try:
            async for msg in ws:
                await self._on_ws_message(conn, msg.type, msg.data)
        finally:
            self._forget(conn)
            await conn.shutdown()
        return ws

    def _forget(self, conn: SimConnection) -> None:
        self._server.connections.discard(conn)
        for topic in conn.topics:
            subs = self._server.subs.get(topic)
            if subs is not None:
                subs.discard(conn)
                if not subs:
                    del self._server.subs[topic]

    async def _on_ws_message(self, conn: SimConnection, msg_type: WSMsgType, data: Any) -> None:
        if msg_type is WSMsgType.PING:
            if not conn.silent:
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await conn.ws.pong(data)
        elif msg_type is WSMsgType.TEXT:
            self._on_text(conn, data)
        elif msg_type is WSMsgType.BINARY:
            self._on_text(conn, bytes(data).decode("utf-8", "replace"))

    def _reply(
        self, conn: SimConnection, op: str, req_id: Any, success: bool, ret_msg: str = ""
    ) -> None:
        build = frames.public_reply if conn.kind is ConnKind.PUBLIC else frames.private_reply
        conn.reply(build(conn.conn_id, op, req_id, success, ret_msg))

    def _on_text(self, conn: SimConnection, text: str) -> None:
        try:
            msg = json.loads(text)
        except ValueError:
            msg = None
        if not isinstance(msg, dict):
            self._reply(conn, "", None, False, frames.decode_error_text(text))
            return
        op = msg.get("op")
        req_id = msg.get("req_id")
        handlers: dict[Any, Callable[[SimConnection, dict[str, Any], Any], None]] = {
            "ping": self._on_ping,
            "subscribe": self._on_subscribe,
            "unsubscribe": self._on_unsubscribe,
        }
        if conn.kind is ConnKind.PRIVATE:
            handlers["auth"] = self._on_auth
        handler = handlers.get(op)
        if handler is None:
            self._reply(conn, op if isinstance(op, str) else "", req_id, False, "error:invalid op")
            return
        try:
            handler(conn, msg, req_id)
        except Exception:  # bad input must get a reply, never kill the socket
            log.exception("sim: handler for op %r failed", op)
            self._reply(conn, str(op), req_id, False, "error:internal error")

    def _on_ping(self, conn: SimConnection, msg: dict[str, Any], req_id: Any) -> None:
        conn.note_ping()
        if conn.kind is ConnKind.PUBLIC:
            conn.reply(frames.public_pong(conn.conn_id, req_id))
        else:
            conn.reply(frames.private_pong(conn.conn_id, req_id, self._server.now_ms()))

    def _on_auth(self, conn: SimConnection, msg: dict[str, Any], req_id: Any) -> None:
        ok = not self._server.faults.state.take_auth_rejection(time.monotonic())
        acct = self._auth_account(msg.get("args")) if ok else None
        ok = acct is not None
        if acct is not None:
            conn.state = ConnState.AUTHENTICATED
            conn.account = acct.name
        self._reply(conn, "auth", req_id, ok, "" if ok else "Params Error")

    def _auth_account(self, args: Any) -> SimAccount | None:
        """The account whose key signed these auth args, or None when they are not valid."""
        if not isinstance(args, list) or len(args) != 3:
            return None
        api_key, expires_raw, signature = args
        if isinstance(expires_raw, str) and expires_raw.isdigit():
            expires_raw = int(expires_raw)
        if not isinstance(expires_raw, int) or isinstance(expires_raw, bool):
            return None
        acct = self._server.accounts.by_key(api_key) if isinstance(api_key, str) else None
        if acct is None or not isinstance(signature, str) or expires_raw <= self._server.now_ms():
            return None
        if not verify(acct.api_secret, ws_auth_payload(expires_raw), signature):
            return None
        return acct

    def _topic_known(self, conn: SimConnection, topic: Any) -> bool:
        if not isinstance(topic, str):
            return False
        if conn.kind is ConnKind.PRIVATE:
            return topic in _PRIVATE_TOPICS
        return topic.startswith("tickers.") and topic[8:] in self._server.exchange.instruments

    def _validate_topics(
        self, conn: SimConnection, op: str, msg: dict[str, Any], req_id: Any
    ) -> list[str] | None:
        """The request's topics, or None after replying with Bybit's failure."""
        if conn.kind is ConnKind.PRIVATE and not conn.authenticated:
            self._reply(conn, op, req_id, False, "Request not authorized")
            return None
        args = msg.get("args")
        if not isinstance(args, list):
            args = [] if args is None else [args]
        for topic in args:
            if not self._topic_known(conn, topic):
                self._reply(conn, op, req_id, False, f"error:handler not found,topic:{topic}")
                return None
        for base in ("position", "order", "execution"):
            if base in args and f"{base}.linear" in args:
                self._reply(
                    conn,
                    op,
                    req_id,
                    False,
                    f"error:all-in-one and categorised topics in one request,topic:{base}.linear",
                )
                return None
        return list(dict.fromkeys(args))

    def _on_subscribe(self, conn: SimConnection, msg: dict[str, Any], req_id: Any) -> None:
        topics = self._validate_topics(conn, "subscribe", msg, req_id)
        if topics is None:
            return
        already = [t for t in topics if t in conn.topics]
        fresh = [t for t in topics if t not in conn.topics]
        for topic in fresh:
            conn.topics.add(topic)
            self._server.subs.setdefault(topic, set()).add(conn)
        if already:
            self._reply(
                conn, "subscribe", req_id, False, f"error:already subscribed,topic:{already[0]}"
            )
        else:
            self._reply(conn, "subscribe", req_id, True)
        if conn.kind is ConnKind.PUBLIC:
            self._send_snapshots(conn, fresh)

    def _send_snapshots(self, conn: SimConnection, topics: list[str]) -> None:
        now_ms = self._server.now_ms()
        for topic in topics:
            symbol = topic[len("tickers.") :]
            if symbol not in self._server.faults.state.muted:
                conn.push(self._server.snapshot_frame(symbol, now_ms))

    def _on_unsubscribe(self, conn: SimConnection, msg: dict[str, Any], req_id: Any) -> None:
        topics = self._validate_topics(conn, "unsubscribe", msg, req_id)
        if topics is None:
            return
        for topic in topics:
            if topic in conn.topics:
                conn.topics.discard(topic)
                subs = self._server.subs.get(topic)
                if subs is not None:
                    subs.discard(conn)
        self._reply(conn, "unsubscribe", req_id, True)


def _new_conn_id(kind: ConnKind) -> str:
    if kind is ConnKind.PUBLIC:
        return str(uuid.uuid4())
    return f"{uuid.uuid4().hex[:20]}-{uuid.uuid4().hex[:4]}"
