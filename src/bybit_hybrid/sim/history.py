"""Audit trail of the simulated exchange: every position change, order and trading-stop request."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class EventKind(Enum):
    """What an audit record describes."""

    OPEN = "open"
    CHANGE = "change"
    CLOSE = "close"
    ORDER = "order"
    TRADING_STOP = "trading_stop"
    MODE = "mode"


class CloseReason(Enum):
    """Why a position closed (or who initiated an order): later campaigns assert on this."""

    ORDER = "order"
    STOP_LOSS = "stop_loss"
    TAKE_PROFIT = "take_profit"
    CONTROL = "control"


@dataclass(frozen=True, slots=True)
class HistoryEvent:
    """One immutable audit record; `details` holds JSON-ready values only."""

    index: int
    time_ms: int
    kind: EventKind
    symbol: str
    position_idx: int | None
    reason: CloseReason | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "time_ms": self.time_ms,
            "kind": self.kind.value,
            "symbol": self.symbol,
            "position_idx": self.position_idx,
            "reason": None if self.reason is None else self.reason.value,
            "details": dict(self.details),
        }


class History:
    """Append-only list of HistoryEvent with small query helpers."""

    def __init__(self) -> None:
        self._events: list[HistoryEvent] = []

    def record(
        self,
        time_ms: int,
        kind: EventKind,
        symbol: str,
        position_idx: int | None,
        reason: CloseReason | None = None,
        **details: Any,
    ) -> HistoryEvent:
        event = HistoryEvent(
            len(self._events), time_ms, kind, symbol, position_idx, reason, details
        )
        self._events.append(event)
        return event

    def __iter__(self) -> Iterator[HistoryEvent]:
        return iter(self._events)

    def __len__(self) -> int:
        return len(self._events)

    def of_kind(self, kind: EventKind) -> list[HistoryEvent]:
        return [event for event in self._events if event.kind is kind]

    def since(self, index: int) -> list[HistoryEvent]:
        return self._events[index:]

    def to_json(self, since: int = 0) -> list[dict[str, Any]]:
        return [event.to_json() for event in self._events[since:]]
