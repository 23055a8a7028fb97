"""Scale-out over NATS JetStream: the market-data hub, the account worker, the event publisher."""

from __future__ import annotations

from bybit_hybrid.bus.settings import BusSettings
from bybit_hybrid.bus.subjects import (
    DEMAND_BUCKET,
    MARKS_STREAM,
    POSITIONS_STREAM,
    mark_subject,
    positions_subject,
)

__all__ = [
    "DEMAND_BUCKET",
    "MARKS_STREAM",
    "POSITIONS_STREAM",
    "BusSettings",
    "mark_subject",
    "positions_subject",
]
