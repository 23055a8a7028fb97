"""The parallel-run comparator: mark divergence levels, one-sided positions, who saw it first."""

from __future__ import annotations

from decimal import Decimal

from msgspec.structs import replace

from bybit_hybrid.protocol.alerts import Severity
from bybit_hybrid.protocol.compare import Comparator, CompareConfig, Feed
from bybit_hybrid.protocol.domain import PositionKey, Side, Source
from bybit_hybrid.protocol.events import (
    MarkUpdated,
    PositionClosed,
    PositionOpened,
    PositionView,
)

D = Decimal
KEY = PositionKey("BTCUSDT", 0)
VIEW = PositionView(
    key=KEY,
    side=Side.BUY,
    size=D("1"),
    entry_price=D("100"),
    mark_price=D("101"),
    unrealised_pnl=D("1"),
    leverage=D("10"),
    position_status="Normal",
    stop_loss=None,
    take_profit=None,
    trailing_stop=None,
    liq_price=None,
    open_time_ms=None,
    status="open",
    source=Source.REST,
    exchange_ts_ms=1,
    cs=None,
    seq=1,
    received_at=0.0,
)


def test_mark_divergence_levels_follow_the_thresholds() -> None:
    c = Comparator(CompareConfig(warning_pct=D("0.1"), critical_pct=D("1")))
    assert c.on_rest_mark("BTC", D("100"), D("100.05"), 0.0) is None
    warning = c.on_rest_mark("BTC", D("100"), D("100.5"), 1.0)
    assert warning is not None and warning.severity is Severity.WARNING
    assert warning.pct == D("0.5000")
    critical = c.on_rest_mark("BTC", D("100"), D("98"), 2.0)
    assert critical is not None and critical.severity is Severity.CRITICAL
    assert c.on_rest_mark("BTC", D("100"), None, 3.0) is None  # nothing to compare yet
    summary = c.summary()
    assert summary["mark_comparisons"] == 3
    assert (summary["mark_warnings"], summary["mark_criticals"]) == (1, 1)
    assert summary["max_mark_divergence_pct"] == "2.0000"


def test_a_hybrid_mark_is_only_held_against_a_recent_rest_sample() -> None:
    c = Comparator(CompareConfig(max_skew_s=1.0))
    assert c.on_hybrid_mark("BTC", D("100"), 0.0) is None  # no REST sample yet
    c.on_rest_mark("BTC", D("100"), None, 10.0)
    found = c.on_hybrid_mark("BTC", D("103"), 10.5)
    assert found is not None and found.severity is Severity.CRITICAL
    assert c.on_hybrid_mark("BTC", D("110"), 11.5) is None
    assert c.stats.skipped_old_reference == 1


def test_positions_held_by_one_side_are_reported_once_after_the_grace() -> None:
    c = Comparator(CompareConfig(grace_s=5.0))
    assert c.check_books(0.0, {}, {KEY: VIEW}) == []
    assert c.check_books(4.9, {}, {KEY: VIEW}) == []
    found = c.check_books(5.0, {}, {KEY: VIEW})
    assert [(d.kind, d.detail) for d in found] == [("one_sided", "only hybrid holds it")]
    assert c.check_books(9.0, {}, {KEY: VIEW}) == []  # once per incident
    assert c.check_books(10.0, {KEY: VIEW}, {KEY: VIEW}) == []
    bigger = replace(VIEW, size=D("2"))
    c.check_books(11.0, {KEY: VIEW}, {KEY: bigger})
    assert [d.kind for d in c.check_books(16.0, {KEY: VIEW}, {KEY: bigger})] == ["position"]
    assert c.summary()["one_sided"] == {"rest": 0, "hybrid": 1}
    assert c.stats.position_mismatches == 1 and c.criticals == 2


def test_marks_alone_do_not_make_positions_disagree() -> None:
    c = Comparator(CompareConfig(grace_s=0.0))
    assert c.check_books(0.0, {KEY: VIEW}, {KEY: replace(VIEW, mark_price=D("150"))}) == []


def test_the_feed_that_saw_a_change_first_is_credited_with_its_lead() -> None:
    c = Comparator(CompareConfig(match_window_s=30.0))
    c.on_position_event(Feed.HYBRID, PositionOpened(VIEW), 1.0)
    c.on_position_event(Feed.HYBRID, MarkUpdated(VIEW), 1.1)  # not a lifecycle change
    c.on_position_event(Feed.REST, PositionOpened(VIEW), 1.25)
    closed = replace(VIEW, size=D(0), status="closed")
    c.on_position_event(Feed.REST, PositionClosed(closed), 5.0)
    c.on_position_event(Feed.HYBRID, PositionClosed(closed), 5.5)
    first = c.summary()["first_seen"]
    assert first == {
        "rest": {"changes": 1, "mean_lead_ms": 500.0, "max_lead_ms": 500.0},
        "hybrid": {"changes": 1, "mean_lead_ms": 250.0, "max_lead_ms": 250.0},
    }
    c.on_position_event(Feed.HYBRID, PositionOpened(replace(VIEW, size=D(3))), 10.0)
    c.on_position_event(Feed.REST, PositionOpened(VIEW), 50.0)  # expires the unmatched one
    assert c.summary()["unmatched_changes"] == {"rest": 0, "hybrid": 1}
