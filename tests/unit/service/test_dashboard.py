"""The dashboard rendered to text for a fixed state matches the committed expected layout."""

from __future__ import annotations

import os
from pathlib import Path

from bybit_hybrid.service.dashboard import (
    DashboardState,
    PositionRow,
    SocketRow,
    percentiles,
    plain_summary,
    render,
    render_text,
)

EXPECTED = Path(__file__).parents[2] / "fixtures" / "dashboard" / "expected.txt"

STATE = DashboardState(
    elapsed_s=12.5,
    mode="hybrid",
    feed="streaming",
    positions=(
        PositionRow(
            "BTCUSDT", 0, "Buy", "0.001", "65000", "65130.5", "0.1305", 0.12, "trailing", "65100"
        ),
        PositionRow("ETHUSDT", 0, "Sell", "0.02", "3200", "3199.6", "0.008", 0.4, "watching", "-"),
        PositionRow("XRPUSDT", 0, "Sell", "2", "0.6", "-", "-", None, "-", "-"),
    ),
    sockets=(SocketRow("private", "live", 1, 0, 0), SocketRow("public-1", "live", 2, 1, 0)),
    reconnections=1,
    events=420,
    event_rate_per_s=33.6,
    latency_ms=(0.2, 0.5, 1.25),
    alerts=("04:00:01 account: streaming -> degraded (private stream down 0.0s)",),
    actions=("04:00:05 BTCUSDT/0 trail watching -> trailing", "04:00:05 BTCUSDT/0 stop -> 65100"),
)


def test_dashboard_layout_matches_the_expected_text() -> None:
    text = render_text(render(STATE), width=100)
    if os.environ.get("BYBIT_HYBRID_UPDATE_EXPECTED"):
        EXPECTED.write_text(text, encoding="utf-8")
    assert text == EXPECTED.read_text(encoding="utf-8")


def test_render_is_pure() -> None:
    assert render_text(render(STATE)) == render_text(render(STATE))


def test_empty_state_renders_placeholders() -> None:
    text = render_text(render(DashboardState(elapsed_s=0.0, mode="rest", feed="-")))
    assert "(none open)" in text
    assert "latency p50/p90/p99: -" in text


def test_plain_summary_has_one_line_per_position_alert_and_action() -> None:
    lines = plain_summary(STATE).splitlines()
    assert lines[0].startswith("-- 12.5s mode=hybrid feed=streaming positions=3 events=420")
    assert sum("BTCUSDT/0 Buy 0.001" in line for line in lines) == 1
    assert sum(line.startswith("   alert:") for line in lines) == 1
    assert sum(line.startswith("   action:") for line in lines) == 2


def test_percentiles() -> None:
    assert percentiles([]) is None
    assert percentiles([float(i) for i in range(101)]) == (50.0, 90.0, 99.0)
