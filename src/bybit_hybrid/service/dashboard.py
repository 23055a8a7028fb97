"""The demo's terminal dashboard: a plain snapshot (`DashboardState`) and pure renderers of it.

`render(state, width, height)` builds a rich renderable that fits the terminal and
`plain_summary(state)` a few text lines, both from the snapshot alone, so a test renders a
fixed state at a fixed size and checks it. The live side (`DashboardFeed`) is in
`dashboard_feed`.

Fitting a small terminal (80x24 is the floor it is designed for) follows priorities:

- every line is one line (no wrapping; long ones end in an ellipsis), so heights are exact;
- the header, the endpoint and sockets line, the event flow line and the protection line are
  always shown, whatever the height;
- position columns are kept by priority (symbol, side, size, mark, stop first; then uPnL,
  trail, age, entry) while they fit the width, with short headers and sides when even the
  first five do not;
- the height left goes to the positions (at least three rows, then "+N more"), the latest
  protection actions and alerts, then every position, then the connections table.

Rendered into the full terminal height (rich `Live(screen=True)` in the demo), nothing ever
scrolls, so no stale copy of a header can be left behind when the positions table grows.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rich import box
from rich.console import Console, Group, RenderableType
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

RECENT = 6
# Rows the positions table keeps before actions and alerts get any space.
_MIN_POSITION_ROWS = 3
# Actions and alerts shown while space is short (all RECENT ones once it is not).
_SHORT_RECENT = 2


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
    # Where the stream is connected (the demo: the simulator's address).
    endpoint: str = ""
    # The protection's totals in one line (trail phases, stops sent, aged closes).
    protection: str = ""


def _age(age_s: float | None) -> str:
    return "-" if age_s is None else f"{age_s:.1f}s"


@dataclass(frozen=True, slots=True)
class _Column:
    name: str
    short: str
    cell: Callable[[PositionRow], str]
    right: bool


_COLUMNS: dict[str, _Column] = {
    "symbol": _Column("Symbol", "Sym", lambda p: f"{p.symbol}/{p.idx}", False),
    "side": _Column("Side", "S", lambda p: p.side, False),
    "size": _Column("Size", "Size", lambda p: p.size, True),
    "entry": _Column("Entry", "Entry", lambda p: p.entry, True),
    "mark": _Column("Mark", "Mark", lambda p: p.mark, True),
    "upnl": _Column("uPnL", "uPnL", lambda p: p.upnl, True),
    "age": _Column("Age", "Age", lambda p: _age(p.mark_age_s), True),
    "trail": _Column("Trail", "Trail", lambda p: p.trail, False),
    "stop": _Column("Stop", "Stop", lambda p: p.stop, True),
}
_DISPLAY_ORDER = ("symbol", "side", "size", "entry", "mark", "upnl", "age", "trail", "stop")
PRIORITY = ("symbol", "side", "size", "mark", "stop", "upnl", "trail", "age", "entry")
_CORE = 5  # the first five of PRIORITY are never dropped


def _positions_table(
    rows: Sequence[PositionRow], columns: Sequence[str], *, short: bool, more: int
) -> Table:
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    shown = [c for c in _DISPLAY_ORDER if c in columns]
    for key in shown:
        column = _COLUMNS[key]
        table.add_column(
            column.short if short else column.name,
            justify="right" if column.right else "left",
            no_wrap=True,
            overflow="ellipsis",
        )
    for p in rows:
        cells = [_COLUMNS[key].cell(p) for key in shown]
        if short and "side" in shown:
            cells[shown.index("side")] = p.side[:1]
        table.add_row(*cells)
    if not rows and not more:
        table.add_row("(none open)", *[""] * (len(shown) - 1))
    if more:
        table.add_row(f"+{more} more", *[""] * (len(shown) - 1))
    return table


def _fit_columns(
    rows: Sequence[PositionRow], more: int, width: int | None, console: Console
) -> tuple[list[str], bool]:
    """The columns (by priority) and header style whose table fits `width`."""
    if width is None:
        return list(PRIORITY), False

    def fits(columns: list[str], short: bool) -> bool:
        table = _positions_table(rows, columns, short=short, more=more)
        return Measurement.get(console, console.options, table).maximum <= width

    for short in (False, True):
        if fits(list(PRIORITY[:_CORE]), short):
            columns = list(PRIORITY[:_CORE])
            for extra in PRIORITY[_CORE:]:
                if fits([*columns, extra], short):
                    columns.append(extra)
            return columns, short
    return list(PRIORITY[:_CORE]), True  # narrower than 80: cells end in ellipses


def _line(text: str, style: str = "") -> Text:
    return Text(text, style=style, no_wrap=True, overflow="ellipsis")


def _fixed_lines(state: DashboardState) -> list[Text]:
    """The four lines shown at every size."""
    header = f"bybit-hybrid demo  {state.elapsed_s:6.1f}s  mode={state.mode}  feed={state.feed}"
    sockets = ", ".join(f"{s.name} {s.state}" for s in state.sockets) or "-"
    where = f"{state.endpoint}  " if state.endpoint else ""
    latency = (
        "latency p50/p90/p99: -"
        if state.latency_ms is None
        else "latency p50/p90/p99: {:.1f} / {:.1f} / {:.1f} ms".format(*state.latency_ms)
    )
    flow = (
        f"events {state.events}  rate {state.event_rate_per_s:.1f}/s  "
        f"reconnects {state.reconnections}  {latency}"
    )
    protection = state.protection or "protection: -"
    return [
        _line(header, "bold"),
        _line(f"{where}sockets: {sockets}"),
        _line(flow),
        _line(protection),
    ]


def _recent(title: str, lines: Sequence[str], shown: int) -> list[Text]:
    if shown <= 0:
        return []
    picked = list(lines[-shown:]) if lines else ["(none)"]
    return [_line(title, "bold"), *(_line(f"  {line}") for line in picked)]


def _sockets_table(state: DashboardState) -> Table:
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for name in ("Socket", "State", "Confirmed", "Pending", "Failed"):
        table.add_column(name, justify="left" if name in ("Socket", "State") else "right")
    for s in state.sockets:
        table.add_row(s.name, s.state, str(s.confirmed), str(s.pending), str(s.failed))
    return table


@dataclass(frozen=True, slots=True)
class _Plan:
    position_rows: int
    actions: int
    alerts: int
    sockets: bool


def _height(state: DashboardState, plan: _Plan) -> int:
    """Lines the dashboard takes with this plan (every line is exactly one line)."""
    n_pos = len(state.positions)
    lines = len(_fixed_lines(state)) + 2  # the positions table's header and rule
    lines += max(1, plan.position_rows) + (1 if plan.position_rows < n_pos else 0)
    lines += 1 + plan.actions if plan.actions else 0
    lines += 1 + plan.alerts if plan.alerts else 0
    lines += 3 + len(state.sockets) if plan.sockets else 0
    return lines


def _plan(state: DashboardState, height: int | None) -> _Plan:
    """How many lines each panel gets in `height`: grown one line at a time, by priority."""
    n_pos = len(state.positions)
    n_actions = min(RECENT, max(1, len(state.actions)))
    n_alerts = min(RECENT, max(1, len(state.alerts)))
    if height is None:
        return _Plan(n_pos, n_actions, n_alerts, bool(state.sockets))
    plan = _Plan(0, 0, 0, False)
    steps = (
        ("position_rows", min(n_pos, _MIN_POSITION_ROWS)),
        ("actions", min(n_actions, _SHORT_RECENT)),
        ("alerts", min(n_alerts, _SHORT_RECENT)),
        ("position_rows", n_pos),
        ("actions", n_actions),
        ("alerts", n_alerts),
    )
    for name, limit in steps:
        while getattr(plan, name) < limit:
            grown = dataclasses.replace(plan, **{name: getattr(plan, name) + 1})
            if _height(state, grown) > height:
                break
            plan = grown
    with_sockets = dataclasses.replace(plan, sockets=bool(state.sockets))
    return with_sockets if _height(state, with_sockets) <= height else plan


def render(
    state: DashboardState, width: int | None = None, height: int | None = None
) -> RenderableType:
    """The dashboard of one snapshot, fitted to `width` x `height` when given (pure)."""
    # Measured unconstrained: a console of the target width would clamp the measurement.
    console = Console(width=10_000, color_system=None, force_terminal=False)
    plan = _plan(state, height)
    shown = state.positions[: plan.position_rows]
    more = len(state.positions) - len(shown)
    columns, short = _fit_columns(shown, more, width, console)  # the rows shown set widths
    parts: list[RenderableType] = [*_fixed_lines(state)]
    parts.append(_positions_table(shown, columns, short=short, more=more))
    parts += _recent("Protection actions", state.actions, plan.actions)
    parts += _recent("Recent alerts", state.alerts, plan.alerts)
    if plan.sockets:
        parts += [_line(""), _sockets_table(state)]
    return Group(*parts)


def render_text(renderable: RenderableType, width: int = 100, height: int | None = None) -> str:
    """A renderable as plain text (no colours, no terminal codes) at a fixed size."""
    buffer = io.StringIO()
    console = Console(
        file=buffer,
        width=width,
        height=height,
        color_system=None,
        force_terminal=False,
        highlight=False,
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
    if state.protection:
        lines.append(f"   {state.protection}")
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
