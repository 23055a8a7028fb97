"""Alert thresholds with a manual clock: each raises at its level and clears when it clears."""

from __future__ import annotations

from dataclasses import replace

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
# The threshold rules alone: no clear hold, no start-up grace (those are tested below).
BARE = AlertConfig(clear_hold_s=0.0, startup_grace_s=0.0)


def _names(events: list[AlertEvent]) -> list[tuple[str, str, Severity]]:
    return [
        (e.name, "raised" if isinstance(e, AlertRaised) else "cleared", e.severity) for e in events
    ]


def test_socket_down_warns_at_30s_escalates_at_2min_and_clears_on_reconnect() -> None:
    a = Alerts(BARE)
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
    a = Alerts(BARE)
    quiet = HealthSample(open_positions=1, last_event_at=0.0)
    assert a.evaluate(0.0, quiet) == []
    assert a.evaluate(59.0, quiet) == []
    assert _names(a.evaluate(70.0, quiet)) == [("no_events", "raised", W)]
    assert _names(a.evaluate(300.0, quiet)) == [("no_events", "raised", C)]
    assert _names(a.evaluate(301.0, HealthSample(open_positions=1, last_event_at=300.5))) == [
        ("no_events", "cleared", C)
    ]


def test_a_flat_account_is_never_quiet_and_time_counts_from_the_first_open() -> None:
    a = Alerts(BARE)
    assert a.evaluate(1000.0, HealthSample(open_positions=0, last_event_at=None)) == []
    assert a.evaluate(1001.0, HealthSample(open_positions=1, last_event_at=None)) == []
    assert a.evaluate(1060.0, HealthSample(open_positions=1, last_event_at=None)) == []
    assert _names(a.evaluate(1061.0, HealthSample(open_positions=1))) == [
        ("no_events", "raised", W)
    ]


def test_more_than_five_reconnects_in_an_hour_is_critical_until_they_age_out() -> None:
    a = Alerts(BARE)
    assert a.evaluate(0.0, HealthSample(reconnections=5)) == []
    assert _names(a.evaluate(10.0, HealthSample(reconnections=6))) == [("reconnects", "raised", C)]
    assert a.evaluate(3599.0, HealthSample(reconnections=6)) == []
    assert _names(a.evaluate(3600.0, HealthSample(reconnections=6))) == [
        ("reconnects", "cleared", C)
    ]


def test_more_than_five_subscription_failures_warn() -> None:
    a = Alerts(BARE)
    assert a.evaluate(0.0, HealthSample(subscription_failures=5)) == []
    assert _names(a.evaluate(1.0, HealthSample(subscription_failures=6))) == [
        ("subscription_failures", "raised", W)
    ]


def test_zero_subscriptions_while_positions_open_is_critical_after_the_grace() -> None:
    a = Alerts(replace(BARE, zero_subscriptions_grace_s=5.0))
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


def test_stale_marks_are_one_alert_naming_the_symbols() -> None:
    a = Alerts(replace(BARE, mark_stale_s=5.0))
    sample = HealthSample(mark_ages_s={"BTC": 5.0, "ETH": 0.1})
    assert _names(a.evaluate(0.0, sample)) == [("mark_stale", "raised", W)]
    status = a.status(2.0)
    assert status["active"] == {
        "mark_stale": {
            "severity": "warning",
            "message": "1 stale marks: BTC (ticker silent 5.0s)",
            "for_s": 2.0,
        }
    }
    more = HealthSample(mark_ages_s={"BTC": 6.0, "ETH": 5.5}, bad_marks={"SOL": "REST 2% off"})
    assert a.evaluate(1.0, more) == []  # the same alert, its text refreshed
    assert a.active()["mark_stale"].message == (
        "3 stale marks: BTC (ticker silent 6.0s), ETH (ticker silent 5.5s), SOL (REST 2% off)"
    )
    assert _names(a.evaluate(3.0, HealthSample(mark_ages_s={"BTC": 0.1}))) == [
        ("mark_stale", "cleared", W)
    ]


# --- issue 19 F7: no storms ------------------------------------------------------------------


def _outage(t: float, *, down_since: float, positions: int) -> HealthSample:
    symbols = {f"S{i}": t - down_since for i in range(positions)}
    return HealthSample(
        sockets_up={"private": True, "public-1": False},
        last_event_at=t,
        open_positions=positions,
        expected_tickers=positions,
        confirmed_tickers=0,
        mark_ages_s=symbols,
    )


def test_a_12s_public_outage_with_10_positions_is_one_alert() -> None:
    """The old code raised zero_subscriptions (critical) and one mark_stale per symbol."""
    a = Alerts(AlertConfig())
    ok = HealthSample(sockets_up={"private": True, "public-1": True}, open_positions=10)
    events: list[AlertEvent] = []
    for step in range(0, 121):
        events += a.evaluate(step / 4, ok)  # 30 s healthy: past any start-up grace
    for step in range(0, 49):  # 12 s down, sampled every 0.25 s
        t = 30.0 + step / 4
        events += a.evaluate(t, _outage(t, down_since=30.0, positions=10))
    raised = [e for e in events if isinstance(e, AlertRaised)]
    assert [(e.name, e.severity) for e in raised] == [("mark_stale", W)]
    assert "10 stale marks" in raised[0].message and "and 5 more" in raised[0].message


def test_an_alert_clears_only_after_its_condition_is_gone_for_the_hold() -> None:
    a = Alerts(replace(BARE, clear_hold_s=10.0))
    down = HealthSample(sockets_up={"private": False})
    up = HealthSample(sockets_up={"private": True})
    a.evaluate(0.0, down)
    assert _names(a.evaluate(30.0, down)) == [("socket_down.private", "raised", W)]
    # It flaps: up 2 s, down 0.5 s, up again... one alert stays on, never raised again.
    events: list[AlertEvent] = []
    t = 30.0
    for _ in range(10):
        events += a.evaluate(t + 2.0, up)
        events += a.evaluate(t + 2.5, down)
        t += 2.5
    assert events == []
    assert a.evaluate(t + 9.9, up) == []
    assert _names(a.evaluate(t + 10.0, up)) == [("socket_down.private", "cleared", W)]
    assert a.stats.raised_warning == 1


def test_an_active_alert_keeps_its_highest_severity_until_it_clears() -> None:
    a = Alerts(replace(BARE, clear_hold_s=0.0))
    down = HealthSample(sockets_up={"private": False})
    a.evaluate(0.0, down)
    a.evaluate(120.0, down)
    assert a.active()["socket_down.private"].severity is C


def test_nothing_is_raised_in_the_start_up_grace_but_timers_run_from_start() -> None:
    a = Alerts(AlertConfig(startup_grace_s=10.0, zero_subscriptions_grace_s=5.0))
    zero = HealthSample(
        sockets_up={"private": True, "public-1": True},
        heard_at={"private": 100.0, "public-1": 100.0},
        last_event_at=0.0,
        open_positions=2,
        expected_tickers=2,
        confirmed_tickers=0,
        mark_ages_s={"BTC": 0.0},
    )
    assert a.evaluate(100.0, zero) == []
    assert a.evaluate(109.9, replace(zero, last_event_at=109.9, mark_ages_s={"BTC": 9.9})) == []
    late = a.evaluate(110.0, replace(zero, last_event_at=110.0, mark_ages_s={"BTC": 10.0}))
    assert _names(late) == [("mark_stale", "raised", W), ("zero_subscriptions", "raised", C)]


def test_zero_subscriptions_waits_while_a_public_socket_is_down() -> None:
    a = Alerts(BARE)
    zero = HealthSample(
        sockets_up={"private": True, "public-1": False},
        open_positions=2,
        expected_tickers=2,
        confirmed_tickers=0,
    )
    for t in range(0, 60):
        assert all(e.name != "zero_subscriptions" for e in a.evaluate(float(t), zero))


def test_zero_subscriptions_needs_the_public_socket_heard_since_the_subscribes_went_out() -> None:
    """Issue 19: a position opens on a public socket that is already black-holed, but whose
    pong is not yet overdue (up to 20 s + 10 s in production): its subscribe goes unanswered.
    The old code raised zero_subscriptions 5 s later, before the socket was known to be down.
    A socket that is merely unheard-from is no evidence; once the pong is overdue the shell
    reports it down (socket_down's alert)."""
    a = Alerts(replace(BARE, zero_subscriptions_grace_s=5.0, socket_down_warning_s=30.0))
    up = {"private": True, "public-1": True}
    heard = {"private": 0.0, "public-1": 0.0}  # its last frame: before the subscribe at t=1
    zero = HealthSample(
        sockets_up=up, heard_at=heard, open_positions=1, expected_tickers=1, confirmed_tickers=0
    )
    events: list[AlertEvent] = []
    for step in range(4, 4 * 29):  # t = 1 .. 28.75: up (pong not overdue), never heard again
        events += a.evaluate(step / 4, zero)
    assert all(e.name != "zero_subscriptions" for e in events)
    # The pong is overdue: down from t=29, socket_down after its warning, never zero.
    down = replace(zero, sockets_up={"private": True, "public-1": False})
    for step in range(4 * 29, 4 * 60):
        events += a.evaluate(step / 4, down)
    assert _names(events) == [("socket_down.public-1", "raised", W)]


def test_zero_subscriptions_fires_when_the_live_socket_answers_but_confirms_nothing() -> None:
    """The other side of the rule: the socket talks (a rejected subscribe, a pong) after the
    zero stretch began and still no ticker is confirmed: critical after the grace."""
    a = Alerts(replace(BARE, zero_subscriptions_grace_s=5.0))
    up = {"private": True, "public-1": True}
    zero = HealthSample(
        sockets_up=up,
        heard_at={"private": 0.0, "public-1": 0.0},
        open_positions=1,
        expected_tickers=1,
        confirmed_tickers=0,
    )
    assert a.evaluate(1.0, zero) == []
    answered = replace(zero, heard_at={"private": 0.0, "public-1": 1.2})  # the reply
    assert a.evaluate(5.9, answered) == []
    assert _names(a.evaluate(6.0, answered)) == [("zero_subscriptions", "raised", C)]


def test_a_reconnect_restarts_the_zero_subscriptions_evidence() -> None:
    """A frame heard on the socket a redial replaced says nothing about the new one: the
    zero stretch (and the evidence it needs) restarts at a reconnect."""
    a = Alerts(replace(BARE, zero_subscriptions_grace_s=5.0))
    zero = HealthSample(
        sockets_up={"public-1": True},
        heard_at={"public-1": 1.5},
        open_positions=1,
        expected_tickers=1,
        confirmed_tickers=0,
    )
    assert a.evaluate(1.0, zero) == []
    redialled = replace(zero, reconnections=1)  # the old socket (heard at 1.5) was replaced
    events: list[AlertEvent] = []
    for t in range(2, 30):
        events += a.evaluate(float(t), redialled)
    assert events == []
