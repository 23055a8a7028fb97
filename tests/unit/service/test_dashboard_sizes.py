"""The dashboard at 80x24, 120x40 and 160x48 (issue 18 item 6, issue 13): everything fits, the
priority columns, the protection line and the simulator's address are always there, and a
terminal that replays the live display shows no stale or duplicated line as the table grows."""

from __future__ import annotations

import io
import logging
from typing import Any

import pyte
import pytest
from rich.console import Console

from bybit_hybrid.service.commands.demo import dashboard_live, fitted, logs_to
from bybit_hybrid.service.dashboard import PRIORITY, DashboardState, render, render_text
from bybit_hybrid.service.dashboard_feed import DashboardFeed
from bybit_hybrid.service.logs import REDACTOR
from tests.unit.service.dashboard_states import ENDPOINT, QuietStream, state

SIZES = [(80, 24), (120, 40), (160, 48)]
HEADER = "bybit-hybrid demo"
CORE_HEADERS = ("Symbol", "Side", "Size", "Mark", "Stop")
ALL_HEADERS = ("Symbol", "Side", "Size", "Entry", "Mark", "uPnL", "Age", "Trail", "Stop")


def _screen(snapshot: DashboardState, width: int, height: int) -> list[str]:
    text = render_text(render(snapshot, width, height), width=width, height=height)
    return text.splitlines()


def _table(lines: list[str]) -> tuple[list[str], list[str]]:
    """(header cells, row lines) of the positions table."""
    start = next(i for i, line in enumerate(lines) if line.startswith("Symbol"))
    end = next(i for i, line in enumerate(lines) if line.startswith("Protection actions"))
    return lines[start].split(), lines[start + 2 : end]


@pytest.mark.parametrize(("width", "height"), SIZES, ids=str)
@pytest.mark.parametrize("positions", [0, 1, 3, 12, 60])
def test_everything_fits_and_what_matters_is_always_shown(
    width: int, height: int, positions: int
) -> None:
    lines = _screen(state(positions), width, height)
    assert len(lines) <= height, "\n".join(lines)
    assert all(len(line) <= width for line in lines)
    assert sum(line.startswith(HEADER) for line in lines) == 1
    assert any(ENDPOINT in line for line in lines[:2]), "the simulator's address is on top"
    assert any(line.startswith("protection: 3 positions") for line in lines)
    assert any(line.startswith("Protection actions") for line in lines)
    assert "  04:00:15 BTCPERP/0 stop -> 65105" in lines, "the latest action is shown"
    headers, rows = _table(lines)
    assert set(CORE_HEADERS) <= set(headers)
    if positions == 0:
        assert rows[0].startswith("(none open)")
        return
    more = [r for r in rows if r.startswith("+")]
    listed = [r for r in rows if not r.startswith("+")]
    hidden = int(more[0].split()[0][1:]) if more else 0
    assert len(listed) + hidden == positions
    assert len(listed) >= min(positions, 3)
    for row in listed:  # no cell cut short: every value is there whole
        assert "…" not in row
        cells = row.split()
        assert cells[0].count("/") == 1 and "65035.25" in cells and "-0.1305" in cells


def test_the_widest_terminal_shows_every_column_in_order() -> None:
    headers, _ = _table(_screen(state(12), 160, 48))
    assert headers == list(ALL_HEADERS)


def test_columns_go_by_priority_as_the_terminal_narrows() -> None:
    headers, _ = _table(_screen(state(12), 80, 24))
    kept = [p for p in PRIORITY if {"upnl": "uPnL"}.get(p, p.capitalize()) in headers]
    assert kept == list(PRIORITY[: len(kept)]), "a lower-priority column outlived a higher one"
    assert "Entry" not in headers  # the lowest priority goes first at 80 columns
    narrow, _ = _table(_screen(state(12), 60, 24))
    assert set(CORE_HEADERS) <= set(narrow) and len(narrow) < len(headers)


def test_a_tall_terminal_lists_every_position_and_more_recent_lines() -> None:
    lines = _screen(state(12), 160, 48)
    _, rows = _table(lines)
    assert len(rows) == 12 and not any(r.startswith("+") for r in rows)
    assert sum("BTCPERP/0 stop ->" in line for line in lines) == 6  # every recent action


def _replay(frames: list[DashboardState], width: int, height: int) -> list[str]:
    """What a `width` x `height` terminal shows after the live display drew `frames`."""
    out = io.StringIO()
    console = Console(file=out, width=width, height=height, force_terminal=True, color_system=None)
    terminal = pyte.Screen(width, height)
    stream = pyte.Stream(terminal)
    live = dashboard_live(console, frames[0])
    live.start(refresh=True)
    for frame in frames[1:]:
        live.update(fitted(console, frame), refresh=True)
    # As a tty does (onlcr): a newline also returns the carriage. Fed before stop(), which
    # leaves the alternate screen.
    stream.feed(out.getvalue().replace("\n", "\r\n"))
    live.stop()
    return [line.rstrip() for line in terminal.display]


@pytest.mark.parametrize(("width", "height"), SIZES, ids=str)
def test_a_growing_table_leaves_no_stale_line_on_the_terminal(width: int, height: int) -> None:
    frames = [state(n) for n in (0, 1, 3, 8, 20, 40, 60, 5)]
    shown = _replay(frames, width, height)
    assert sum(line.startswith(HEADER) for line in shown) == 1, "\n".join(shown)
    expected = _screen(frames[-1], width, height)
    assert shown[: len(expected)] == expected
    assert not any(shown[len(expected) :]), "lines left over from a taller frame"


class _Protection:
    def status(self) -> dict[str, Any]:
        return {"positions": [], "trailing": {"stops_sent": 0, "closes": 0}, "aged": {"closes": 0}}


def test_log_records_go_to_the_alerts_panel_not_behind_the_display() -> None:
    """A log line written to the terminal between two refreshes leaves a stale copy of the
    header above the display (the stacked headers of issue 13): while the dashboard is up,
    warnings go to its alerts panel and nothing else reaches the terminal."""
    width, height = 160, 48
    out = io.StringIO()
    console = Console(file=out, width=width, height=height, force_terminal=True, color_system=None)
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    terminal_log = logging.StreamHandler(out)  # stderr on the same terminal
    terminal_log.addFilter(REDACTOR)
    root.handlers[:], root.level = [terminal_log], logging.INFO
    feed = DashboardFeed(QuietStream(), _Protection(), wall=lambda: 0.0)
    log = logging.getLogger("bybit_hybrid.test")
    try:
        with logs_to(feed, True):
            live = dashboard_live(console, state(0))
            live.start(refresh=True)
            for n in (1, 3, 8, 20):
                log.info("public-1: subscribed a ticker")
                log.warning("public-1: socket closed: closed by peer (code 1000)")
                live.update(fitted(console, state(n)), refresh=True)
            terminal = pyte.Screen(width, height)
            pyte.Stream(terminal).feed(out.getvalue().replace("\n", "\r\n"))
            live.stop()
        assert root.handlers == [terminal_log], "the handlers are back after the dashboard"
    finally:
        root.handlers[:], root.level = saved, level
    shown = [line.rstrip() for line in terminal.display]
    assert sum(line.startswith(HEADER) for line in shown) == 1, "\n".join(shown)
    assert "socket closed" not in out.getvalue(), "a log line reached the terminal"
    assert list(feed.alerts)[-1] == (
        "00:00:00 WARNING bybit_hybrid.test: public-1: socket closed: closed by peer (code 1000)"
    )
    assert not any("subscribed a ticker" in a for a in feed.alerts), "info stays out"
