"""Every subject, stream, bucket and message id on the bus, in one place (docs/bus.md)."""

from __future__ import annotations

import re
from typing import Final

MARKS_STREAM: Final = "BYBIT_MARKS"
MARKS_PREFIX: Final = "bybit.marks."
POSITIONS_STREAM: Final = "BYBIT_POSITIONS"
POSITIONS_PREFIX: Final = "bybit.positions."
DEMAND_BUCKET: Final = "bybit_demand"
# Core NATS (not JetStream): each hub's liveness, so a quiet market is not taken for a dead hub.
HUB_HEARTBEAT: Final = "bybit.hub.heartbeat"

# A NATS subject token and a KV key both allow these; a dot would split the subject.
_ACCOUNT = re.compile(r"[A-Za-z0-9_-]{1,64}")
_SYMBOL = re.compile(r"[A-Z0-9]{2,40}")


def check_account(name: str) -> str:
    """An account name for subjects and demand keys; never a key, never a dot or wildcard."""
    if not _ACCOUNT.fullmatch(name):
        raise ValueError(
            f"account name {name!r} must be 1-64 characters of A-Z a-z 0-9 _ - "
            "(it becomes a NATS subject token and a KV key)"
        )
    return name


def check_symbol(symbol: str) -> str:
    if not _SYMBOL.fullmatch(symbol):
        raise ValueError(f"symbol {symbol!r} is not a Bybit linear symbol (A-Z 0-9)")
    return symbol


def mark_subject(symbol: str) -> str:
    return MARKS_PREFIX + check_symbol(symbol)


def positions_subject(account: str) -> str:
    return POSITIONS_PREFIX + check_account(account)


def mark_msg_id(symbol: str, cs: int | None, ts_ms: int) -> str:
    """`{symbol}:{cs}:{ts_ms}`: two hubs that saw the same ticker frame publish the same id, so
    JetStream's duplicate window keeps one. `cs` alone would not do: Bybit moves the mark with
    the index without bumping `cs` (BYBIT_V5 §5), so two different marks can share a `cs`."""
    return f"{symbol}:{'-' if cs is None else cs}:{ts_ms}"


def position_msg_id(account: str, symbol: str, idx: int, kind: str, seq: int | None) -> str:
    """One id per exchange state of a position: a restarted worker's bootstrap re-announces
    the positions it already published, and the duplicate window drops those copies."""
    return f"{account}:{symbol}:{idx}:{kind}:{'-' if seq is None else seq}"
