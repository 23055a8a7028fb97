"""The trailing adapter's records: each stop request sent, its counters, and which position
lifetime a stored or live trail belongs to."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from bybit_hybrid.protection.position_manager import ManagedPosition
from bybit_hybrid.protection.trailing import TrailState
from bybit_hybrid.protocol.domain import PositionKey


@dataclass(frozen=True, slots=True)
class SendRecord:
    """One trading-stop request about to leave: for the reaction-time benchmark and status.

    Times are `time.perf_counter()`: `cause_at_s` when the router received the mark that
    produced the decision, `sent_at_s` just before the REST call.
    """

    key: PositionKey
    stop_price: str
    cause_at_s: float
    sent_at_s: float


@dataclass
class TrailingStats:
    decisions: Counter[str] = field(default_factory=Counter)
    stops_sent: int = 0
    not_modified: int = 0
    retries: int = 0
    failures: int = 0
    gone: int = 0
    gone_refuted: int = 0  # 10001 "zero position" while the position list shows it open
    wrong_side: int = 0
    closes: int = 0
    close_failures: int = 0
    adopted: int = 0
    monitor_only: int = 0
    resumed: int = 0
    pruned: int = 0


def same_lifetime(stored: TrailState, position: ManagedPosition) -> bool:
    """A stored trail belongs to this position: same side, and the same openTime when both
    have one (else the same entry: without an openTime that is the best evidence there is)."""
    view = position.view
    if stored.side is not view.side:
        return False
    if stored.opened_at_ms and view.open_time_ms:
        return stored.opened_at_ms == view.open_time_ms
    return stored.entry_price == view.entry_price


def other_lifetime(state: TrailState, position: ManagedPosition) -> bool:
    """A live trail seeing a different openTime or side: the position was replaced unseen."""
    view = position.view
    if view.side is not None and view.side is not state.side:
        return True
    return bool(
        state.opened_at_ms and view.open_time_ms and state.opened_at_ms != view.open_time_ms
    )
