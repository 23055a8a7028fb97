"""`DashboardFeed` stamps protection actions when they happened, not when a (piped, every 5 s)
summary happens to look (issue 18)."""

from __future__ import annotations

import asyncio
import calendar
from typing import Any

from bybit_hybrid.service.commands import demo
from bybit_hybrid.service.dashboard_feed import DashboardFeed
from tests.unit.service.dashboard_states import QuietStream

T0 = calendar.timegm((2026, 12, 4, 4, 0, 0))


class _Protection:
    def __init__(self) -> None:
        self.phase: str | None = "watching"
        self.stop: str | None = None

    def status(self) -> dict[str, Any]:
        return {
            "trailing": {"stops_sent": 0, "closes": 0},
            "aged": {"closes": 0, "monitor_only": 0},
            "positions": [
                {
                    "symbol": "BTCUSDT",
                    "position_idx": 0,
                    "trail_phase": self.phase,
                    "trail_stop": self.stop,
                    "aged_phase": "young",
                }
            ],
        }


def test_a_trail_change_is_stamped_when_it_was_observed() -> None:
    wall = [T0]
    protection = _Protection()
    feed = DashboardFeed(QuietStream(), protection, wall=lambda: wall[0])
    feed.observe()
    wall[0] = T0 + 1  # the trail activates at 04:00:01 ...
    protection.phase, protection.stop = "trailing", "65100"
    feed.observe()
    wall[0] = T0 + 5  # ... and the summary looks at 04:00:05
    actions = feed.snapshot().actions
    assert actions == (
        "04:00:01 BTCUSDT/0 trail watching -> trailing",
        "04:00:01 BTCUSDT/0 stop -> 65100",
    )


class _CountingFeed:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def observe(self) -> None:
        self.calls.append("observe")

    def snapshot(self) -> Any:
        self.calls.append("snapshot")
        return DashboardFeed(QuietStream(), _Protection()).snapshot()


async def test_piped_mode_observes_between_summaries(monkeypatch: Any) -> None:
    monkeypatch.setattr(demo, "SUMMARY_EVERY_S", 0.2)
    monkeypatch.setattr(demo, "REFRESH_S", 0.02)
    feed = _CountingFeed()
    await demo._plain(feed, asyncio.Event(), 0.5)  # type: ignore[arg-type]
    assert "snapshot" in feed.calls
    first_summary = feed.calls.index("snapshot")
    assert feed.calls[:first_summary].count("observe") >= 1, feed.calls
