"""The core's JSON-ready status picture (`HybridCore.status`, `get_status()`): cold, on request."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from bybit_hybrid.protocol.events import PositionView, status_row
from bybit_hybrid.protocol.marks import MarkCache
from bybit_hybrid.protocol.session import ConnectionSession


def core_status(
    sessions: Mapping[str, ConnectionSession],
    views: Iterable[PositionView],
    marks: MarkCache,
    *,
    rest_retries_pending: int,
    now: float,
) -> dict[str, object]:
    """Every socket's state and topics, every open position with its mark's age."""
    sockets = {}
    for name, session in sessions.items():
        sub = session.subscriptions.status()
        sockets[name] = {
            "state": session.state.value,
            "reconnect_at": session.reconnect_at,
            "desired": sub.desired,
            "pending": sub.pending,
            "confirmed": sub.confirmed,
            "failed": dict(sub.failed),
        }
    positions = [status_row(v, marks.age_s(v.key.symbol, now)) for v in views]
    return {
        "sockets": sockets,
        "positions": positions,
        "rest_retries_pending": rest_retries_pending,
    }
