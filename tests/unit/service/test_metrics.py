"""The metrics registry: event counters, bounded labels, health semantics, its own registry."""

from __future__ import annotations

from prometheus_client import REGISTRY

from bybit_hybrid.protocol.alerts import AlertRaised, Severity
from bybit_hybrid.protocol.failover import FailoverSwitched, FeedMode
from bybit_hybrid.protocol.session import SessionState, SocketDead, StateChanged
from bybit_hybrid.service.metrics import ServiceMetrics, health, reason_label


def test_events_are_counted_with_bounded_labels() -> None:
    metrics = ServiceMetrics(clock=lambda: 100.0)
    metrics.on_event(SocketDead("public-1", "pong timeout after 10s; key=SECRETKEY"))
    metrics.on_event(FailoverSwitched("BTCUSDT", FeedMode.STREAMING, FeedMode.POLLING, "x", 1.0))
    metrics.on_event(AlertRaised("mark_stale", Severity.WARNING, "BTCUSDT stale 6s", 1.0))
    text = metrics.render().decode()
    assert 'bybit_hybrid_socket_deaths_total{reason="pong",socket="public-1"} 1.0' in text
    assert 'bybit_hybrid_failover_switches_total{scope="symbol",to="polling"} 1.0' in text
    assert (
        'bybit_hybrid_alerts_total{action="raised",name="mark_stale",severity="warning"} 1.0'
        in text
    )
    assert 'bybit_hybrid_core_events_total{type="socket_dead"} 1.0' in text
    assert "SECRETKEY" not in text
    # Its own registry: nothing leaks into (or collides in) the process-global one.
    assert (
        REGISTRY.get_sample_value("bybit_hybrid_core_events_total", {"type": "socket_dead"}) is None
    )


def test_reason_label_is_one_short_word() -> None:
    assert reason_label("Pong timeout: 10 s") == "pong"
    assert reason_label("1234 !!") == "unknown"
    assert len(reason_label("a" * 100)) == 32


def test_health_needs_a_fresh_mark_for_every_open_position() -> None:
    fresh = {
        "running": True,
        "positions": [{"symbol": "BTCUSDT", "position_idx": 0, "mark_age_s": 0.5}],
    }
    assert health(fresh, 5.0) == (True, [])
    assert health({"running": True, "positions": []}, 5.0) == (True, [])
    stale = {
        "running": True,
        "positions": [
            {"symbol": "BTCUSDT", "position_idx": 0, "mark_age_s": 6.0},
            {"symbol": "ETHUSDT", "position_idx": 0, "mark_age_s": None},
        ],
    }
    ok, reasons = health(stale, 5.0)
    assert not ok
    assert reasons == ["BTCUSDT/0: mark is 6.0s old (limit 5s)", "ETHUSDT/0: no mark yet"]
    assert health({"running": False, "positions": []}, 5.0) == (False, ["stream not running"])


# --- issue 18 item 5: metrics that the docs promise ------------------------------------------

_S = SessionState


def _deaths(metrics: ServiceMetrics) -> dict[tuple[str, str], float]:
    found: dict[tuple[str, str], float] = {}
    for family in metrics.registry.collect():
        if family.name == "bybit_hybrid_socket_deaths":
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    found[(sample.labels["socket"], sample.labels["reason"])] = sample.value
    return found


def test_a_dropped_socket_is_a_socket_death() -> None:
    """The exchange closing a live socket (the commonest death) has no SocketDead event."""
    metrics = ServiceMetrics(clock=lambda: 100.0)
    metrics.on_event(StateChanged("private", _S.LIVE, _S.DISCONNECTED, "closed"))
    metrics.on_event(StateChanged("public-1", _S.SUBSCRIBING, _S.DISCONNECTED, "closed by peer"))
    assert _deaths(metrics) == {("private", "closed"): 1.0, ("public-1", "closed"): 1.0}


def test_a_death_the_core_declared_is_counted_once() -> None:
    metrics = ServiceMetrics(clock=lambda: 100.0)
    reason = "no pong or data within 10 s of ping"
    metrics.on_event(SocketDead("public-1", reason))
    metrics.on_event(StateChanged("public-1", _S.LIVE, _S.CLOSING, reason))
    metrics.on_event(StateChanged("public-1", _S.CLOSING, _S.DISCONNECTED, reason))
    assert _deaths(metrics) == {("public-1", "no"): 1.0}


def test_a_requested_close_and_a_failed_dial_are_not_deaths() -> None:
    metrics = ServiceMetrics(clock=lambda: 100.0)
    metrics.on_event(StateChanged("public-1", _S.LIVE, _S.CLOSING, "shutdown"))
    metrics.on_event(StateChanged("public-1", _S.CLOSING, _S.DISCONNECTED, "shutdown"))
    metrics.on_event(StateChanged("private", _S.CONNECTING, _S.DISCONNECTED, "connect failed"))
    assert _deaths(metrics) == {}


class _FakeStream:
    def __init__(self, stats: dict[str, object], status: dict[str, object]) -> None:
        self._stats, self._status = stats, status

    def get_stats(self) -> dict[str, object]:
        return self._stats

    def get_status(self) -> dict[str, object]:
        return self._status


def _mode_line(stats: dict[str, object], status: dict[str, object]) -> str:
    metrics = ServiceMetrics(clock=lambda: 100.0)
    metrics.bind(_FakeStream(stats, status))
    lines = [
        line
        for line in metrics.render().decode().splitlines()
        if line.startswith("bybit_hybrid_mode{")
    ]
    assert len(lines) == 1, lines
    return lines[0]


def test_the_feed_label_says_rest_where_rest_drives() -> None:
    # rest mode: the REST-only stream has no failover and no driver key
    assert _mode_line({"mode": "rest"}, {"mode": "rest"}) == (
        'bybit_hybrid_mode{feed="rest",mode="rest"} 1.0'
    )
    for mode in ("canary", "parallel"):
        line = _mode_line({"mode": mode}, {"mode": mode, "driver": "rest"})
        assert line == f'bybit_hybrid_mode{{feed="rest",mode="{mode}"}} 1.0'
    # with a failover, its account mode
    line = _mode_line(
        {"mode": "hybrid", "account_mode": "polling"}, {"mode": "hybrid", "driver": "hybrid"}
    )
    assert line == 'bybit_hybrid_mode{feed="polling",mode="hybrid"} 1.0'
    # the plain hybrid stream (no failover): its streams drive
    line = _mode_line({}, {"mode": "hybrid"})
    assert line == 'bybit_hybrid_mode{feed="streaming",mode="hybrid"} 1.0'


def test_the_reconcile_counters_of_get_stats_are_exported() -> None:
    """Issue 19: a lagging `position/list` shows as many keys missed and few closed; the three
    counters of get_stats() are one counter family with an `outcome` label."""
    metrics = ServiceMetrics(clock=lambda: 100.0)
    stats: dict[str, object] = {
        "reconcile_misses": 7,
        "reconcile_misses_withdrawn": 5,
        "reconcile_closes": 2,
    }
    metrics.bind(_FakeStream(stats, {"mode": "hybrid"}))
    text = metrics.render().decode()
    for outcome, value in (("missed", 7), ("withdrawn", 5), ("closed", 2)):
        assert f'bybit_hybrid_reconcile_keys_total{{outcome="{outcome}"}} {value}.0' in text
    # A stream without them (an older driver) exposes zeros, not a gap in the series.
    metrics = ServiceMetrics(clock=lambda: 100.0)
    metrics.bind(_FakeStream({}, {"mode": "hybrid"}))
    assert 'bybit_hybrid_reconcile_keys_total{outcome="closed"} 0.0' in metrics.render().decode()
