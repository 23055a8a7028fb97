"""The core's JSON-ready status picture (`HybridCore.status`, `get_status()`): cold, on request."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from bybit_hybrid.protocol.events import PositionView
from bybit_hybrid.protocol.marks import MarkCache
from bybit_hybrid.protocol.session import ConnectionSession


def position_status(view: PositionView, mark_age_s: float | None) -> dict[str, object]:
    """One open position as `get_status()["positions"]` lists it (decimals as strings)."""
    return {
        "symbol": view.key.symbol,
        "position_idx": view.key.idx,
        "side": view.side.value if view.side else None,
        "size": str(view.size),
        "mark_price": None if view.mark_price is None else str(view.mark_price),
        "mark_age_s": None if mark_age_s is None else round(mark_age_s, 3),
    }


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
    positions = [position_status(v, marks.age_s(v.key.symbol, now)) for v in views]
    return {
        "sockets": sockets,
        "positions": positions,
        "rest_retries_pending": rest_retries_pending,
    }
