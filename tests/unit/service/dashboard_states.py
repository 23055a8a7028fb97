"""Dashboard snapshots for render tests: demo-like positions with trails, actions and alerts."""

from __future__ import annotations

from typing import Any

from bybit_hybrid.service.dashboard import DashboardState, PositionRow, SocketRow

ENDPOINT = "sim http://127.0.0.1:43117"
_SYMBOLS = ("BTCPERP", "ETHUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT", "ADAUSDT", "LINKUSDT")


def position(n: int) -> PositionRow:
    symbol = _SYMBOLS[n % len(_SYMBOLS)] + (str(n // len(_SYMBOLS)) if n >= len(_SYMBOLS) else "")
    return PositionRow(
        symbol=symbol,
        idx=n % 3,
        side="Buy" if n % 2 == 0 else "Sell",
        size=f"0.{n + 1:03d}",
        entry="65000.5",
        mark="65035.25",
        upnl="-0.1305",
        mark_age_s=0.12,
        trail="trailing" if n % 2 == 0 else "watching",
        stop=f"6503{n % 10}.5",
    )


def state(positions: int, *, actions: int = 6, alerts: int = 3) -> DashboardState:
    return DashboardState(
        elapsed_s=42.5,
        mode="hybrid",
        feed="streaming",
        positions=tuple(position(n) for n in range(positions)),
        sockets=(SocketRow("private", "live", 1, 0, 0), SocketRow("public-1", "live", 3, 0, 0)),
        reconnections=1,
        events=4200,
        event_rate_per_s=33.6,
        latency_ms=(0.2, 0.5, 1.25),
        alerts=tuple(
            f"04:00:0{n} account: streaming -> degraded (alert {n})" for n in range(alerts)
        ),
        actions=tuple(f"04:00:1{n} BTCPERP/0 stop -> 6510{n}" for n in range(actions)),
        endpoint=ENDPOINT,
        protection="protection: 3 positions (2 trailing, 1 watching), 4 stops sent, 0 aged closes",
    )


class QuietStream:
    """A stream for `DashboardFeed` with nothing open and no socket: only the frame is drawn."""

    def get_status(self) -> dict[str, Any]:
        return {"mode": "hybrid", "positions": [], "sockets": {}}

    def get_stats(self) -> dict[str, Any]:
        return {"account_mode": "streaming"}

    def positions(self) -> list[Any]:
        return []
