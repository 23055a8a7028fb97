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
    c = Comparator(CompareConfig(warning_pct=D("0.1"), critical_pct=D("1"), persist_samples=1))
    c.on_hybrid_mark("BTC", D("100.05"), 0)
    assert c.on_rest_mark("BTC", D("100"), 10, 0.0) is None
    c.on_hybrid_mark("BTC", D("100.5"), 1000)
    warning = c.on_rest_mark("BTC", D("100"), 1010, 1.0)
    assert warning is not None and warning.severity is Severity.WARNING
    assert warning.pct == D("0.5000")
    c.on_hybrid_mark("BTC", D("98"), 2000)
    c.on_rest_mark("BTC", D("100"), 2001, 2.0)  # the same incident: reported once
    assert c.on_rest_mark("ETH", D("100"), 3000, 3.0) is None  # nothing to compare yet
    summary = c.summary()
    assert summary["mark_comparisons"] == 3 and summary["skipped_old_reference"] == 1
    assert (summary["mark_warnings"], summary["mark_criticals"]) == (1, 0)
    assert summary["max_mark_divergence_pct"] == "2.0000"


# --- issue 19 F5: like with like, and only a divergence that persists ---------------------


def test_a_spike_right_after_a_poll_is_market_movement_not_divergence() -> None:
    """REST samples at exchange time 1,000 ms; the mark spikes 1.2 % at 1,100 ms. The hybrid
    mark in effect at 1,000 ms is the pre-spike one: both feeds are exact, no divergence."""
    c = Comparator(CompareConfig(persist_samples=1))
    c.on_hybrid_mark("BTC", D("100"), 900)
    c.on_hybrid_mark("BTC", D("101.2"), 1100)  # the spike, after REST's answer was stamped
    assert c.on_rest_mark("BTC", D("100"), 1000, 1.2) is None
    assert c.stats.max_mark_divergence_pct == 0 and c.criticals == 0
    # The next poll sees the spike too: still no divergence.
    assert c.on_rest_mark("BTC", D("101.2"), 2500, 2.6) is None


def test_one_sample_off_is_not_a_divergence_three_in_a_row_are() -> None:
    c = Comparator(CompareConfig(persist_samples=3))
    c.on_hybrid_mark("BTC", D("100"), 0)
    assert c.on_rest_mark("BTC", D("102"), 1000, 1.0) is None  # one sample off
    assert c.on_rest_mark("BTC", D("100"), 2000, 2.0) is None  # agrees: the run resets
    assert c.on_rest_mark("BTC", D("102"), 3000, 3.0) is None
    assert c.on_rest_mark("BTC", D("102"), 4000, 4.0) is None
    found = c.on_rest_mark("BTC", D("102"), 5000, 5.0)
    assert found is not None and found.severity is Severity.CRITICAL
    assert "3 samples in a row" in found.detail
    assert c.on_rest_mark("BTC", D("102"), 6000, 6.0) is None  # reported once per incident
    assert c.criticals == 1


def test_a_run_mixing_warning_and_critical_samples_is_a_warning() -> None:
    c = Comparator(CompareConfig(persist_samples=2))
    c.on_hybrid_mark("BTC", D("100"), 0)
    assert c.on_rest_mark("BTC", D("102"), 1000, 1.0) is None
    found = c.on_rest_mark("BTC", D("100.5"), 2000, 2.0)
    assert found is not None and found.severity is Severity.WARNING


def test_a_rest_sample_older_than_the_hybrid_history_is_skipped() -> None:
    c = Comparator(CompareConfig(persist_samples=1, history_s=10.0))
    c.on_hybrid_mark("BTC", D("100"), 5000)
    assert c.on_rest_mark("BTC", D("90"), 4000, 5.0) is None
    assert c.stats.skipped_old_reference == 1
    for ts_ms in range(6000, 30_000, 1000):
        c.on_hybrid_mark("BTC", D(ts_ms), ts_ms)
    assert c.on_rest_mark("BTC", D("100"), 5500, 30.0) is None  # pruned: older than 10 s
    assert c.stats.skipped_old_reference == 2
    assert c.on_rest_mark("BTC", D("25000"), 25_500, 30.0) is None  # the mark in effect


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


# --- issue 19: a divergence is a gap that persists over distinct REST samples --------------


def test_one_rest_sample_read_at_three_polls_is_one_sample_not_a_persisting_gap() -> None:
    """The REST book keeps its mark when a `market/tickers` answer is no newer than the one it
    holds (a lagging answer is ignored), so the shell can hand the comparator the same sample
    (same exchange time) at several polls. Repeating one reading is not persistence: a 1.2 %
    spike caught by one REST answer must not become a critical divergence."""
    c = Comparator(CompareConfig(persist_samples=3))
    c.on_hybrid_mark("BTC", D("100"), 0)
    for now in (1.0, 1.5, 2.0, 2.5):
        assert c.on_rest_mark("BTC", D("101.2"), 900, now) is None
    assert c.criticals == 0 and c.stats.mark_comparisons == 1
    assert c.summary()["repeated_samples"] == 3
    # Distinct samples that stay off are a divergence, counted from the first of them.
    assert c.on_rest_mark("BTC", D("101.2"), 1400, 3.0) is None
    found = c.on_rest_mark("BTC", D("101.2"), 1900, 3.5)
    assert found is not None and found.severity is Severity.CRITICAL


def test_a_stale_stream_against_a_market_that_moved_is_reported_after_three_samples() -> None:
    """Recorded the way the parallel shell feeds the comparator (`RolloutStream._on_rest_poll`):
    after each poll the hybrid mark is recorded stamped with its ticker's newest frame (mark-less
    deltas keep arriving on a stale stream, so that stamp is a little after the REST answer's),
    then the REST sample. The stream's mark froze at 3,200 while the market moved to 3,360 and
    stayed there: a real, persisting divergence, reported at the third divergent sample."""
    c = Comparator(CompareConfig(persist_samples=3))
    found = []
    rest_ts = 10_000
    for poll, rest_mark in enumerate(["3200.1", "3199.9"] + ["3360.0", "3360.4", "3359.8"] * 3):
        c.on_hybrid_mark("ETH", D("3200.00"), rest_ts + 80)  # the stale stream's mark
        result = c.on_rest_mark("ETH", D(rest_mark), rest_ts, poll * 0.5)
        if result is not None:
            found.append((poll, result))
        rest_ts += 500
    assert [(poll, d.severity) for poll, d in found] == [(4, Severity.CRITICAL)]
    assert "3200.00" in found[0][1].detail and "3359.8" in found[0][1].detail


def test_a_rest_spike_the_market_undid_is_not_a_divergence() -> None:
    """Recorded from a docs-test run that "never persisted" (issue 19 note): the stream's mark
    frozen at 3,200, the simulator's mark set 5 % up alone, which its next mark move (derived
    from the last trade price) undid. REST caught 3,360 in one sample; afterwards both feeds
    showed about 3,200. Reporting that would be the F5 false alarm: nothing persisted."""
    c = Comparator(CompareConfig(persist_samples=3))
    c.on_hybrid_mark("ETH", D("3200.00"), 1_000)
    samples = ["3360.00", "3199.94", "3199.85", "3199.89", "3199.89", "3199.86"]
    for poll, rest_mark in enumerate(samples):
        rest_ts = 1_500 + poll * 500
        assert c.on_rest_mark("ETH", D(rest_mark), rest_ts, poll * 0.5) is None
        c.on_hybrid_mark("ETH", D("3200.00"), rest_ts + 400)
    assert c.stats.max_mark_divergence_pct > 4 and c.criticals == 0
