"""Rendering events for people and pipes: one JSON object per line, decimals as strings."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import msgspec

_ENCODER: Final = msgspec.json.Encoder(decimal_format="string")


def event_line(event: str, payload: Mapping[str, object]) -> str:
    """`{"event": ..., "exchange": ..., "data": {...}}` as one line (no trailing newline)."""
    return _ENCODER.encode({"event": event, **payload}).decode()


def position_line(data: Mapping[str, object]) -> str:
    """A short human line for one position event's data dict (DESIGN §4 contract)."""
    side = data["side"] or "-"
    return (
        f"{data['symbol']}/{data['position_idx']} {data['status']:<6} {side:<4} "
        f"size={data['size']} entry={data['entry_price']} mark={data['mark_price']} "
        f"upnl={data['unrealized_pnl']} ({data['source']})"
    )
