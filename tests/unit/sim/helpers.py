"""Builders shared by the pure-exchange unit tests: an exchange at a fixed clock, paused prices."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Final

from bybit_hybrid.sim.exchange import Exchange, PrivatePush

T0_MS: Final = 1_760_000_000_000


def make_exchange(symbols: int = 6, seed: int = 1) -> Exchange:
    """An exchange whose walk is paused, so prices only move when a test says so."""
    ex = Exchange(symbols, seed, T0_MS)
    ex.prices.pause()
    return ex


def position_rows(pushes: list[PrivatePush]) -> list[dict[str, Any]]:
    return [row for push in pushes if push.topic == "position" for row in push.rows]


def stop_body(symbol: str = "BTCUSDT", idx: int = 0, **fields: Any) -> dict[str, Any]:
    return {
        "category": "linear",
        "symbol": symbol,
        "tpslMode": "Full",
        "positionIdx": idx,
        **fields,
    }


def d(text: str) -> Decimal:
    return Decimal(text)
