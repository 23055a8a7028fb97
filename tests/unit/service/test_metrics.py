"""The metrics registry: event counters, bounded labels, health semantics, its own registry."""

from __future__ import annotations

from prometheus_client import REGISTRY

from bybit_hybrid.protocol.alerts import AlertRaised, Severity
from bybit_hybrid.protocol.failover import FailoverSwitched, FeedMode
from bybit_hybrid.protocol.session import SocketDead
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
