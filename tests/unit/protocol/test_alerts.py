"""Alert thresholds with a manual clock: each raises at its level and clears when it clears."""

from __future__ import annotations

from bybit_hybrid.protocol.alerts import (
    AlertCleared,
    AlertConfig,
    AlertEvent,
    AlertRaised,
    Alerts,
    HealthSample,
    Severity,
)

W = Severity.WARNING
C = Severity.CRITICAL


def _names(events: list[AlertEvent]) -> list[tuple[str, str, Severity]]:
    return [
        (e.name, "raised" if isinstance(e, AlertRaised) else "cleared", e.severity) for e in events
    ]


def test_socket_down_warns_at_30s_escalates_at_2min_and_clears_on_reconnect() -> None:
    a = Alerts(AlertConfig())
    down = HealthSample(sockets_up={"private": False, "public-1": True})
    assert a.evaluate(0.0, down) == []
    assert a.evaluate(29.9, down) == []
    assert _names(a.evaluate(30.0, down)) == [("socket_down.private", "raised", W)]
    assert a.evaluate(60.0, down) == []  # still on: no repeat
    assert _names(a.evaluate(120.0, down)) == [("socket_down.private", "raised", C)]
    up = HealthSample(sockets_up={"private": True, "public-1": True})
    events = a.evaluate(121.0, up)
    assert _names(events) == [("socket_down.private", "cleared", C)]
    assert isinstance(events[0], AlertCleared) and not a.active()
    assert a.stats.raised_warning == 1 and a.stats.raised_critical == 1 and a.stats.cleared == 1


def test_no_events_while_positions_are_open_warns_at_60s_and_is_critical_at_5min() -> None:
    a = Alerts(AlertConfig())
    quiet = HealthSample(open_positions=1, last_event_at=0.0)
    assert a.evaluate(0.0, quiet) == []
    assert a.evaluate(59.0, quiet) == []
    assert _names(a.evaluate(70.0, quiet)) == [("no_events", "raised", W)]
    assert _names(a.evaluate(300.0, quiet)) == [("no_events", "raised", C)]
    assert _names(a.evaluate(301.0, HealthSample(open_positions=1, last_event_at=300.5))) == [
        ("no_events", "cleared", C)
    ]


def test_a_flat_account_is_never_quiet_and_time_counts_from_the_first_open() -> None:
    a = Alerts(AlertConfig())
    assert a.evaluate(1000.0, HealthSample(open_positions=0, last_event_at=None)) == []
    assert a.evaluate(1001.0, HealthSample(open_positions=1, last_event_at=None)) == []
    assert a.evaluate(1060.0, HealthSample(open_positions=1, last_event_at=None)) == []
    assert _names(a.evaluate(1061.0, HealthSample(open_positions=1))) == [
        ("no_events", "raised", W)
    ]


def test_more_than_five_reconnects_in_an_hour_is_critical_until_they_age_out() -> None:
    a = Alerts(AlertConfig())
    assert a.evaluate(0.0, HealthSample(reconnections=5)) == []
    assert _names(a.evaluate(10.0, HealthSample(reconnections=6))) == [("reconnects", "raised", C)]
    assert a.evaluate(3599.0, HealthSample(reconnections=6)) == []
    assert _names(a.evaluate(3600.0, HealthSample(reconnections=6))) == [
        ("reconnects", "cleared", C)
    ]


def test_more_than_five_subscription_failures_warn() -> None:
    a = Alerts(AlertConfig())
    assert a.evaluate(0.0, HealthSample(subscription_failures=5)) == []
    assert _names(a.evaluate(1.0, HealthSample(subscription_failures=6))) == [
        ("subscription_failures", "raised", W)
    ]


def test_zero_subscriptions_while_positions_open_is_critical_after_the_grace() -> None:
    a = Alerts(AlertConfig(zero_subscriptions_grace_s=5.0))
    zero = HealthSample(open_positions=2, expected_tickers=2, confirmed_tickers=0)
    assert a.evaluate(0.0, zero) == []
    assert _names(a.evaluate(5.0, zero)) == [("zero_subscriptions", "raised", C)]
    ok = HealthSample(open_positions=2, expected_tickers=2, confirmed_tickers=1)
    assert _names(a.evaluate(6.0, ok)) == [("zero_subscriptions", "cleared", C)]
    # All symbols on REST (a 0 % cutover) expect no ticker: no alert.
    rest_only = HealthSample(
        open_positions=2, expected_tickers=0, confirmed_tickers=0, last_event_at=99.0
    )
    assert a.evaluate(100.0, rest_only) == []


def test_a_stale_mark_warns_per_symbol_and_clears() -> None:
    a = Alerts(AlertConfig(mark_stale_s=5.0))
    sample = HealthSample(mark_ages_s={"BTC": 5.0, "ETH": 0.1})
    assert _names(a.evaluate(0.0, sample)) == [("mark_stale.BTC", "raised", W)]
    status = a.status(2.0)
    assert status["active"] == {
        "mark_stale.BTC": {"severity": "warning", "message": "BTC mark 5.0s old", "for_s": 2.0}
    }
    assert _names(a.evaluate(3.0, HealthSample(mark_ages_s={"BTC": 0.1}))) == [
        ("mark_stale.BTC", "cleared", W)
    ]
