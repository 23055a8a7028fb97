"""Rendering events for people and pipes: one JSON object per line, decimals as strings."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import msgspec

_ENCODER: Final = msgspec.json.Encoder(decimal_format="string")


def event_line(event: str, payload: Mapping[str, object]) -> str:
    """`{"event": ..., "exchange": ..., "data": {...}}` as one line (no trailing newline)."""
    return _ENCODER.encode({"event": event, **payload}).decode()
