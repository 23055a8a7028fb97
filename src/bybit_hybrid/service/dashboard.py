"""The demo's terminal dashboard: a plain snapshot (`DashboardState`) and pure renderers of it.

`render(state)` builds a rich renderable and `plain_summary(state)` a few text lines, both
from the snapshot alone, so a test renders a fixed state to text and compares it with an
expected layout. `DashboardFeed` is the live side: a stream listener plus `snapshot()`, which
reads the stream's and the protection's status and notes protection actions as they happen.
"""

from __future__ import annotations

import io
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from rich import box
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from bybit_hybrid.protocol.alerts import AlertCleared, AlertRaised
from bybit_hybrid.protocol.compare import Divergence
from bybit_hybrid.protocol.events import PositionEvent
from bybit_hybrid.protocol.failover import FailoverSwitched
from bybit_hybrid.protocol.hybrid import CoreEvent
from bybit_hybrid.protocol.session import SocketDead

RECENT = 6
LATENCY_SAMPLES = 4000


@dataclass(frozen=True, slots=True)
class PositionRow:
    symbol: str
    idx: int
    side: str
    size: str
    entry: str
    mark: str
    upnl: str
    mark_age_s: float | None
    trail: str
    stop: str


@dataclass(frozen=True, slots=True)
class SocketRow:
    name: str
    state: str
    confirmed: int
    pending: int
    failed: int


@dataclass(frozen=True, slots=True)
class DashboardState:
    """Everything the dashboard shows, as plain values."""

    elapsed_s: float
    mode: str
    feed: str
    positions: tuple[PositionRow, ...] = ()
    sockets: tuple[SocketRow, ...] = ()
    reconnections: int = 0
    events: int = 0
    event_rate_per_s: float = 0.0
    # p50, p90, p99 of the delay from frame receipt to event delivery, in milliseconds.
    latency_ms: tuple[float, float, float] | None = None
    alerts: tuple[str, ...] = ()
    actions: tuple[str, ...] = ()


def _age(age_s: float | None) -> str:
    return "-" if age_s is None else f"{age_s:.1f}s"


def render(state: DashboardState) -> RenderableType:
    """The dashboard of one snapshot (pure: same state, same output)."""
    header = Text(
        f"bybit-hybrid demo  {state.elapsed_s:6.1f}s  mode={state.mode}  feed={state.feed}",
        style="bold",
    )
    positions = Table(title="Positions", box=box.SIMPLE_HEAD, pad_edge=False)
    for name in ("Symbol", "Side", "Size", "Entry", "Mark", "uPnL", "Age", "Trail", "Stop"):
        right = name not in ("Symbol", "Side", "Trail")
        positions.add_column(name, justify="right" if right else "left", no_wrap=True)
    for p in state.positions:
        positions.add_row(
            f"{p.symbol}/{p.idx}",
            p.side,
            p.size,
            p.entry,
            p.mark,
            p.upnl,
            _age(p.mark_age_s),
            p.trail,
            p.stop,
        )
    if not state.positions:
        positions.add_row("(none open)", *[""] * 8)
    sockets = Table(title="Connections", box=box.SIMPLE_HEAD, pad_edge=False)
    for name in ("Socket", "State", "Confirmed", "Pending", "Failed"):
        sockets.add_column(name, justify="left" if name in ("Socket", "State") else "right")
    for s in state.sockets:
        sockets.add_row(s.name, s.state, str(s.confirmed), str(s.pending), str(s.failed))
    latency = (
        "latency p50/p90/p99: -"
        if state.latency_ms is None
        else "latency p50/p90/p99: {:.1f} / {:.1f} / {:.1f} ms".format(*state.latency_ms)
    )
    flow = Text(
        f"events {state.events}  rate {state.event_rate_per_s:.1f}/s  "
        f"reconnects {state.reconnections}  {latency}"
    )
    alerts = Table(title="Recent alerts", box=box.SIMPLE_HEAD, show_header=False)
    alerts.add_column("alert")
    for line in state.alerts or ("(none)",):
        alerts.add_row(line)
    actions = Table(title="Protection actions", box=box.SIMPLE_HEAD, show_header=False)
    actions.add_column("action")
    for line in state.actions or ("(none)",):
        actions.add_row(line)
    return Group(header, positions, sockets, flow, alerts, actions)


def render_text(renderable: RenderableType, width: int = 100) -> str:
    """A renderable as plain text (no colours, no terminal codes) at a fixed width."""
    buffer = io.StringIO()
    console = Console(
        file=buffer, width=width, color_system=None, force_terminal=False, highlight=False
    )
    console.print(renderable)
    return "\n".join(line.rstrip() for line in buffer.getvalue().splitlines()) + "\n"


def plain_summary(state: DashboardState) -> str:
    """A few lines for a pipe: totals, then one line per position."""
    latency = (
        "-" if state.latency_ms is None else "{:.1f}/{:.1f}/{:.1f}ms".format(*state.latency_ms)
    )
    lines = [
        f"-- {state.elapsed_s:.1f}s mode={state.mode} feed={state.feed} "
        f"positions={len(state.positions)} events={state.events} "
        f"rate={state.event_rate_per_s:.1f}/s reconnects={state.reconnections} "
        f"latency p50/p90/p99={latency}"
    ]
    for s in state.sockets:
        lines.append(f"   socket {s.name} {s.state} confirmed={s.confirmed} failed={s.failed}")
    for p in state.positions:
        lines.append(
            f"   {p.symbol}/{p.idx} {p.side} {p.size} entry={p.entry} mark={p.mark} "
            f"upnl={p.upnl} age={_age(p.mark_age_s)} trail={p.trail} stop={p.stop}"
        )
    lines.extend(f"   alert: {a}" for a in state.alerts)
    lines.extend(f"   action: {a}" for a in state.actions)
    return "\n".join(lines)


def percentiles(samples: Sequence[float]) -> tuple[float, float, float] | None:
    if not samples:
        return None
    ordered = sorted(samples)
    last = len(ordered) - 1
    return tuple(ordered[round(q * last)] for q in (0.5, 0.9, 0.99))  # type: ignore[return-value]


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
    started_at: float = field(default=0.0)
    events: int = 0
    alerts: deque[str] = field(default_factory=lambda: deque(maxlen=RECENT))
    actions: deque[str] = field(default_factory=lambda: deque(maxlen=RECENT))
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_SAMPLES))
    _last: tuple[float, int] | None = None
    _trails: dict[str, tuple[str | None, str | None, str | None]] = field(default_factory=dict)
    _rate: float = 0.0
    _counters: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.started_at = self.started_at or time.monotonic()

    def _stamp(self) -> str:
        return time.strftime("%H:%M:%S", time.gmtime(self.wall()))

    def observe(self) -> None:
        """Notes protection changes now (cheap; call it often), so that each action is
        stamped when it happened rather than at the next snapshot."""
        self._protection_rows()

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
        sockets = tuple(
            SocketRow(
                name=name,
                state=str(s.get("state", "?")),
                confirmed=int(s.get("confirmed", 0)),
                pending=int(s.get("pending", 0)),
                failed=len(s.get("failed") or {}),
            )
            for name, s in sorted((status.get("sockets") or {}).items())
        )
        return DashboardState(
            elapsed_s=now - self.started_at,
            mode=str(status.get("mode", "?")),
            feed=str(stats.get("account_mode", "-")),
            positions=tuple(rows),
            sockets=sockets,
            reconnections=int(stats.get("reconnections", 0)),
            events=self.events,
            event_rate_per_s=self._rate,
            latency_ms=percentiles(list(self.latencies_ms)),
            alerts=tuple(self.alerts),
            actions=tuple(self.actions),
        )

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
