"""The live side of the demo's dashboard: a stream listener that snapshots the stream and its
protection into a `DashboardState`, noting protection actions as they happen."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from bybit_hybrid.protocol.alerts import AlertCleared, AlertRaised
from bybit_hybrid.protocol.compare import Divergence
from bybit_hybrid.protocol.events import PositionEvent
from bybit_hybrid.protocol.failover import FailoverSwitched
from bybit_hybrid.protocol.hybrid import CoreEvent
from bybit_hybrid.protocol.session import SocketDead
from bybit_hybrid.service.dashboard import (
    RECENT,
    DashboardState,
    PositionRow,
    SocketRow,
    percentiles,
)
from bybit_hybrid.service.metrics import feed_mode

LATENCY_SAMPLES = 4000


def _text(value: Decimal | None) -> str:
    return "-" if value is None else str(value)


def _short(value: Decimal | None) -> str:
    """At most 8 significant digits (an average entry can have many)."""
    if value is None:
        return "-"
    text = format(value, ".8g")
    return format(Decimal(text).normalize(), "f") if "." in text else text


@dataclass
class DashboardFeed:
    """Listens to a stream and snapshots it with its protection (see the module docstring)."""

    stream: Any
    protection: Any
    clock: Callable[[], float] = time.time
    # The wall clock that stamps alerts and actions (HH:MM:SS, UTC).
    wall: Callable[[], float] = time.time
    # Where the stream is connected, shown on the dashboard (the demo: the simulator).
    endpoint: str = ""
    started_at: float = field(default=0.0)
    events: int = 0
    alerts: deque[str] = field(default_factory=lambda: deque(maxlen=RECENT))
    actions: deque[str] = field(default_factory=lambda: deque(maxlen=RECENT))
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_SAMPLES))
    _last: tuple[float, int] | None = None
    _trails: dict[str, tuple[str | None, str | None, str | None]] = field(default_factory=dict)
    _rate: float = 0.0
    _counters: dict[str, int] = field(default_factory=dict)
    _protection_line: str = ""

    def __post_init__(self) -> None:
        self.started_at = self.started_at or time.monotonic()

    def _stamp(self) -> str:
        return time.strftime("%H:%M:%S", time.gmtime(self.wall()))

    def observe(self) -> None:
        """Notes protection changes now (cheap; call it often), so that each action is
        stamped when it happened rather than at the next snapshot."""
        self._protection_rows()

    def note_alert(self, line: str) -> None:
        """A line for the alerts panel (e.g. a log record), stamped now."""
        self.alerts.append(f"{self._stamp()} {line}")

    def on_event(self, event: CoreEvent) -> None:
        at = self._stamp()
        if isinstance(event, PositionEvent):
            self.events += 1
            received = event.view.received_at
            if received:
                self.latencies_ms.append(max(0.0, (self.clock() - received) * 1000))
            if event.kind in ("opened", "closed"):
                view = event.view
                self.actions.append(
                    f"{at} {view.key.symbol}/{view.key.idx} {event.kind} "
                    f"{view.side or ''} {view.size}".rstrip()
                )
        elif isinstance(event, AlertRaised):
            self.alerts.append(f"{at} {event.severity.value.upper()} {event.message}")
        elif isinstance(event, AlertCleared):
            self.alerts.append(f"{at} cleared {event.name}")
        elif isinstance(event, FailoverSwitched):
            self.alerts.append(
                f"{at} {event.scope}: {event.old.value} -> {event.new.value} ({event.reason})"
            )
        elif isinstance(event, Divergence):
            self.alerts.append(f"{at} divergence {event.kind} {event.subject}")
        elif isinstance(event, SocketDead):
            self.alerts.append(f"{at} socket {event.connection} died ({event.reason})")

    def snapshot(self) -> DashboardState:
        now = time.monotonic()
        if self._last is not None and now > self._last[0]:
            self._rate = (self.events - self._last[1]) / (now - self._last[0])
        self._last = (now, self.events)
        status = self.stream.get_status()
        stats = self.stream.get_stats()
        return DashboardState(
            elapsed_s=now - self.started_at,
            mode=str(status.get("mode", "?")),
            feed=feed_mode(stats, status),
            positions=self._position_rows(status),
            sockets=_socket_rows(status),
            reconnections=int(stats.get("reconnections", 0)),
            events=self.events,
            event_rate_per_s=self._rate,
            latency_ms=percentiles(list(self.latencies_ms)),
            alerts=tuple(self.alerts),
            actions=tuple(self.actions),
            endpoint=self.endpoint,
            protection=self._protection_line,
        )

    def _position_rows(self, status: dict[str, Any]) -> tuple[PositionRow, ...]:
        """The open positions, sorted, with their mark ages and protection."""
        protected = self._protection_rows()
        rows = []
        ages = {(p["symbol"], p["position_idx"]): p.get("mark_age_s") for p in status["positions"]}
        for view in sorted(self.stream.positions(), key=lambda v: (v.key.symbol, v.key.idx)):
            if not view.is_open:
                continue
            trail, stop = protected.get((view.key.symbol, view.key.idx), ("-", "-"))
            rows.append(
                PositionRow(
                    symbol=view.key.symbol,
                    idx=view.key.idx,
                    side=str(view.side or "-"),
                    size=str(view.size),
                    entry=_short(view.entry_price),
                    mark=_text(view.mark_price),
                    upnl=_short(view.unrealised_pnl),
                    mark_age_s=ages.get((view.key.symbol, view.key.idx)),
                    trail=trail,
                    stop=stop,
                )
            )
        return tuple(rows)

    def _protection_rows(self) -> dict[tuple[str, int], tuple[str, str]]:
        """Trail phase and stop per position; notes changes of either as protection actions."""
        rows: dict[tuple[str, int], tuple[str, str]] = {}
        at = self._stamp()
        status = self.protection.status()
        counters = {
            "stops sent": status["trailing"]["stops_sent"],
            "trailing closes": status["trailing"]["closes"],
            "aged closes": status["aged"]["closes"],
            "aged monitor-only": status["aged"]["monitor_only"],
        }
        self._protection_line = _protection_summary(status)
        for name, value in counters.items():
            if value > self._counters.get(name, 0) and name != "stops sent":
                self.actions.append(f"{at} {name}: {value}")
            self._counters[name] = value
        for p in status["positions"]:
            name = f"{p['symbol']}/{p['position_idx']}"
            phase, stop, aged = p.get("trail_phase"), p.get("trail_stop"), p.get("aged_phase")
            before = self._trails.get(name)
            if before is not None:
                if phase != before[0] and phase is not None:
                    self.actions.append(f"{at} {name} trail {before[0] or '-'} -> {phase}")
                if stop != before[1] and stop is not None:
                    self.actions.append(f"{at} {name} stop -> {stop}")
                if aged != before[2] and aged is not None:
                    self.actions.append(f"{at} {name} aged {before[2] or '-'} -> {aged}")
            elif aged not in (None, "young", "fresh"):
                self.actions.append(f"{at} {name} aged: {aged}")
            self._trails[name] = (phase, stop, aged)
            rows[(p["symbol"], p["position_idx"])] = (phase or "-", stop or "-")
        return rows


def _protection_summary(status: dict[str, Any]) -> str:
    """`protection: 3 positions (1 trailing, 2 watching), 4 stops sent, 0 aged closes`."""
    phases: dict[str, int] = {}
    for p in status["positions"]:
        phase = str(p.get("trail_phase") or "none")
        phases[phase] = phases.get(phase, 0) + 1
    detail = ", ".join(f"{n} {phase}" for phase, n in sorted(phases.items()))
    count = len(status["positions"])
    return (
        f"protection: {count} position{'' if count == 1 else 's'}"
        f"{f' ({detail})' if detail else ''}, {status['trailing']['stops_sent']} stops sent, "
        f"{status['aged']['closes']} aged closes"
    )


def _socket_rows(status: dict[str, Any]) -> tuple[SocketRow, ...]:
    return tuple(
        SocketRow(
            name=name,
            state=str(s.get("state", "?")),
            confirmed=int(s.get("confirmed", 0)),
            pending=int(s.get("pending", 0)),
            failed=len(s.get("failed") or {}),
        )
        for name, s in sorted((status.get("sockets") or {}).items())
    )
