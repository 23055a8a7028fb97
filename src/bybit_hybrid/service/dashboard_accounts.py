"""The multi-account demo's dashboard: a plain snapshot of every account, the hub and the bus,
and pure renderers of it (`render_accounts` for the terminal, `accounts_summary` for pipes).

The snapshot is built by `demo --accounts` from the account workers' /status, the hub's
/status and the marks it reads from the bus itself, so a test renders a fixed state and checks
it. Every line is one line (no wrapping), so the height is exact and fits the terminal.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

# Rows of positions each account keeps when the terminal is short ("+N more" after them).
_MIN_ROWS_PER_ACCOUNT = 1
_MARKS_SHOWN = 8
_COLUMNS = ("Account", "Symbol", "Side", "Size", "Mark", "Age", "Trail", "Stop")
_RIGHT = frozenset({"Size", "Mark", "Age", "Stop"})


@dataclass(frozen=True, slots=True)
class AccountPosition:
    symbol: str
    idx: int
    side: str
    size: str
    mark: str
    mark_age_s: float | None
    trail: str
    stop: str


@dataclass(frozen=True, slots=True)
class AccountView:
    """One account worker as its /status shows it (`state` "up", "starting", "exited 1" ...)."""

    name: str
    state: str
    marks_from: str = "-"  # "bus", "fallback" (its own public socket) or "-" while unknown
    positions: tuple[AccountPosition, ...] = ()
    events_published: int = 0
    stops_sent: int = 0
    failovers: int = 0
    hub_beat_age_s: float | None = None  # the age of the last hub heartbeat this worker saw


@dataclass(frozen=True, slots=True)
class HubView:
    state: str
    public_sockets: int = 0
    demand: int = 0
    marks_published: int = 0


@dataclass(frozen=True, slots=True)
class BusMarkView:
    symbol: str
    mark: str
    age_s: float


@dataclass(frozen=True, slots=True)
class AccountsState:
    """Everything the multi-account dashboard shows, as plain values."""

    elapsed_s: float
    bus_url: str
    sim_url: str
    bus_connected: bool
    hub: HubView
    accounts: tuple[AccountView, ...]
    marks: tuple[BusMarkView, ...] = ()
    alerts: tuple[str, ...] = ()


def _line(text: str, style: str = "") -> Text:
    return Text(text, style=style, no_wrap=True, overflow="ellipsis")


def _bus_line(state: AccountsState) -> str:
    health = "connected" if state.bus_connected else "DISCONNECTED"
    hub = state.hub
    return (
        f"bus {state.bus_url} {health} · hub {hub.state}: {hub.public_sockets} public socket(s) "
        f"for {hub.demand} demanded symbol(s), {hub.marks_published} marks published"
    )


def _header_lines(state: AccountsState) -> list[Text]:
    title = (
        f"bybit-hybrid demo · {len(state.accounts)} accounts over NATS · "
        f"{state.elapsed_s:.0f}s · simulator {state.sim_url} · Ctrl-C to stop"
    )
    marks = "  ".join(f"{m.symbol} {m.mark} ({m.age_s:.1f}s)" for m in state.marks[:_MARKS_SHOWN])
    return [
        _line(title, "bold"),
        _line(_bus_line(state)),
        _line(f"hub marks: {marks or '(none yet)'}"),
    ]


def _account_title(acct: AccountView) -> str:
    beat = "" if acct.hub_beat_age_s is None else f" (hub beat {acct.hub_beat_age_s:.1f}s ago)"
    return (
        f"{acct.name} [{acct.state}] marks from {acct.marks_from}{beat} · "
        f"{len(acct.positions)} open · {acct.stops_sent} stops sent · "
        f"{acct.events_published} events on bus · {acct.failovers} failovers"
    )


def _positions_table(accounts: Sequence[AccountView], rows_each: int | None) -> Table:
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for name in _COLUMNS:
        table.add_column(name, justify="right" if name in _RIGHT else "left", no_wrap=True)
    for acct in accounts:
        shown = acct.positions if rows_each is None else acct.positions[:rows_each]
        for p in shown:
            age = "-" if p.mark_age_s is None else f"{p.mark_age_s:.1f}s"
            table.add_row(acct.name, f"{p.symbol}/{p.idx}", p.side, p.size, p.mark, age,
                          p.trail, p.stop)  # fmt: skip
        hidden = len(acct.positions) - len(shown)
        if hidden or not acct.positions:
            label = f"+{hidden} more" if hidden else "(none open)"
            table.add_row(acct.name, label, *[""] * 6)
    return table


def _rows_each(state: AccountsState, height: int | None) -> int | None:
    """Position rows per account that fit `height` (None: all)."""
    if height is None:
        return None
    fixed = 3 + len(state.accounts) + 3 + min(len(state.alerts), 3) + 1
    total = sum(max(1, len(a.positions)) for a in state.accounts)
    room = height - fixed
    if total <= room:
        return None
    return max(_MIN_ROWS_PER_ACCOUNT, room // max(1, len(state.accounts)) - 1)


def render_accounts(state: AccountsState, height: int | None = None) -> RenderableType:
    """The dashboard of `state`, fitted to `height` lines when given."""
    parts: list[RenderableType] = list(_header_lines(state))
    parts += [_line(_account_title(a)) for a in state.accounts]
    parts.append(_positions_table(state.accounts, _rows_each(state, height)))
    if state.alerts:
        parts.append(_line("alerts:", "bold"))
        parts += [_line(a, "yellow") for a in state.alerts[-3:]]
    return Group(*parts)


def accounts_summary(state: AccountsState) -> str:
    """A few plain lines: the bus and hub, then one line per account with its positions."""
    lines = [
        f"[{state.elapsed_s:5.1f}s] {_bus_line(state)}",
        "  hub marks: "
        + (", ".join(f"{m.symbol}={m.mark}" for m in state.marks[:_MARKS_SHOWN]) or "(none yet)"),
    ]
    for acct in state.accounts:
        held = ", ".join(f"{p.symbol} {p.side} {p.size} @ {p.mark}" for p in acct.positions)
        lines.append(f"  {_account_title(acct)}: {held or '(none open)'}")
    lines += [f"  alert: {a}" for a in state.alerts[-3:]]
    return "\n".join(lines)
