"""ConnectionSession: transition table, auth gating, heartbeat, staleness, reconnect, deadlines."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from typing import Any

import pytest

from bybit_hybrid.protocol.backoff import BackoffPolicy
from bybit_hybrid.protocol.errors import IllegalTransition
from bybit_hybrid.protocol.session import (
    TRANSITIONS,
    AuthFailed,
    ConnectionSession,
    HeartbeatRtt,
    SessionConfig,
    SessionEvent,
    SessionState,
    SocketDead,
    StateChanged,
    Trigger,
    transition,
)
from bybit_hybrid.protocol.subscriptions import (
    SubscriptionConfirmed,
    SubscriptionFailed,
    TopicState,
)
from bybit_hybrid.wire.decode import decode_ws
from bybit_hybrid.wire.signing import ws_auth_payload
from tests.unit.protocol.session_helpers import (
    CREDENTIALS,
    T0,
    ops,
    private_session,
    public_session,
    recorded,
    sent,
)

S = SessionState
BAD = "orderbook.50.NOPEUSDT"  # the topic F07 names
ETH = "orderbook.1.ETHUSDT"  # the topic F08 names
BTC = "tickers.BTCUSDT"


def states(events: list[SessionEvent]) -> list[tuple[SessionState, SessionState]]:
    return [(e.old, e.new) for e in events if isinstance(e, StateChanged)]


def live_private(now: float = T0, config: SessionConfig | None = None) -> ConnectionSession:
    session = private_session(config)
    session.start_connect(now)
    session.on_open(now)
    session.on_message(recorded("F01"), now)
    session.on_message(recorded("F06"), now)
    session.take_outbox()
    assert session.state is S.LIVE
    return session


def live_public(*topics: str, now: float = T0) -> ConnectionSession:
    session = public_session(*topics)
    session.start_connect(now)
    session.on_open(now)
    for request in sent(session.take_outbox()):
        session.on_message(recorded("F05", str(request["req_id"])), now)
    assert session.state is S.LIVE
    return session


# --- the table --------------------------------------------------------------------------------


def test_table_covers_the_documented_lifecycle() -> None:
    assert transition(S.DISCONNECTED, Trigger.CONNECT) is S.CONNECTING
    assert transition(S.CONNECTING, Trigger.OPEN_PRIVATE) is S.AUTHENTICATING
    assert transition(S.CONNECTING, Trigger.OPEN_PUBLIC) is S.SUBSCRIBING
    assert transition(S.AUTHENTICATING, Trigger.AUTH_ACCEPTED) is S.SUBSCRIBING
    assert transition(S.SUBSCRIBING, Trigger.SUBSCRIPTIONS_SETTLED) is S.LIVE
    assert transition(S.LIVE, Trigger.SILENCE) is S.STALE
    assert transition(S.STALE, Trigger.MESSAGE) is S.LIVE
    for state in S:
        if state is not S.DISCONNECTED:
            assert transition(state, Trigger.CLOSED) is S.DISCONNECTED


ILLEGAL = [(s, t) for s in S for t in Trigger if (s, t) not in TRANSITIONS]


@pytest.mark.parametrize(("state", "trigger"), ILLEGAL, ids=lambda v: v.value)
def test_every_pair_outside_the_table_is_illegal(state: SessionState, trigger: Trigger) -> None:
    with pytest.raises(IllegalTransition) as caught:
        transition(state, trigger)
    assert str(caught.value) == f"cannot handle event {trigger.value} in state {state.value}"
    assert caught.value.state is state
    assert caught.value.event is trigger


def drive_to(state: SessionState, private: bool) -> tuple[ConnectionSession, float]:
    """A session brought to `state` through the public API only; returns it and `now`."""
    session = private_session() if private else public_session(BTC)
    if state is S.DISCONNECTED:
        return session, T0
    session.start_connect(T0)
    if state is S.CONNECTING:
        return session, T0
    session.on_open(T0)
    if state is S.CLOSING:
        session.close("test")
        return session, T0
    if state is S.AUTHENTICATING:
        assert private
        return session, T0
    if private:
        session.on_message(recorded("F01"), T0)
    if state is S.SUBSCRIBING:
        assert private
        return session, T0
    if private:
        session.on_message(recorded("F06"), T0)
    if state is S.STALE:
        session.tick(T0 + 20)  # ping
        session.tick(T0 + 25)  # stale_after_s without any frame
    assert session.state is state
    return session, T0 + 25


FIRE: dict[Trigger, Callable[[ConnectionSession, float], object]] = {
    Trigger.CONNECT: lambda s, now: s.start_connect(now),
    Trigger.OPEN_PRIVATE: lambda s, now: s.on_open(now),
    Trigger.OPEN_PUBLIC: lambda s, now: s.on_open(now),
    Trigger.AUTH_ACCEPTED: lambda s, now: s.on_message(recorded("F01"), now),
    Trigger.AUTH_REJECTED: lambda s, now: s.on_message(recorded("F02"), now),
    Trigger.SUBSCRIPTIONS_SETTLED: lambda s, now: s.on_message(recorded("F06"), now),
    Trigger.MESSAGE: lambda s, now: s.on_message(recorded("F04"), now),
    Trigger.SILENCE: lambda s, now: (s.tick(now + 20), s.tick(now + 25)),
    Trigger.CLOSE_REQUESTED: lambda s, now: s.close("bye"),
    Trigger.CLOSED: lambda s, now: s.on_close(now, "gone"),
}


@pytest.mark.parametrize(
    ("state", "trigger"), list(TRANSITIONS), ids=lambda v: v.value if hasattr(v, "value") else v
)
def test_every_table_entry_is_reachable_through_the_api(
    state: SessionState, trigger: Trigger
) -> None:
    session, now = drive_to(state, private=trigger is not Trigger.OPEN_PUBLIC)
    FIRE[trigger](session, now)
    assert session.state is TRANSITIONS[(state, trigger)]


@pytest.mark.parametrize(
    ("state", "call", "event"),
    [
        (S.DISCONNECTED, lambda s: s.on_open(T0), "open_private"),
        (S.DISCONNECTED, lambda s: s.on_message(recorded("F04"), T0), "message"),
        (S.CONNECTING, lambda s: s.on_message(recorded("F04"), T0), "message"),
        (S.DISCONNECTED, lambda s: s.on_close(T0, "twice"), "closed"),
        (S.LIVE, lambda s: s.start_connect(T0), "connect"),
        (S.AUTHENTICATING, lambda s: s.on_open(T0), "open_private"),
    ],
)
def test_illegal_calls_raise_with_event_and_state(
    state: SessionState, call: Callable[[ConnectionSession], object], event: str
) -> None:
    session, _ = drive_to(state, private=True)
    with pytest.raises(
        IllegalTransition, match=f"^cannot handle event {event} in state {state.value}$"
    ):
        call(session)


def test_lifecycle_events_name_old_new_and_reason() -> None:
    session = private_session()
    events = session.start_connect(T0) + session.on_open(T0)
    events += session.on_message(recorded("F01"), T0) + session.on_message(recorded("F06"), T0)
    assert states(events) == [
        (S.DISCONNECTED, S.CONNECTING),
        (S.CONNECTING, S.AUTHENTICATING),
        (S.AUTHENTICATING, S.SUBSCRIBING),
        (S.SUBSCRIBING, S.LIVE),
    ]
    assert [e.reason for e in events if isinstance(e, StateChanged)] == [
        "connect started",
        "socket open",
        "auth accepted",
        "subscriptions answered",
    ]
    assert SubscriptionConfirmed("private", "position") in events


# --- auth -------------------------------------------------------------------------------------


def test_private_open_sends_auth_with_expires_in_ms_and_no_subscribe() -> None:
    session = private_session()
    session.start_connect(T0)
    session.on_open(T0 + 0.25)
    (auth,) = sent(session.take_outbox())
    expires_ms = int((T0 + 0.25 + 10) * 1000)
    assert auth["op"] == "auth"
    assert auth["args"] == [
        "test_api_key",
        expires_ms,
        CREDENTIALS.sign(ws_auth_payload(expires_ms)),
    ]


def test_no_subscribe_leaves_before_the_auth_ack() -> None:
    session = private_session()
    session.start_connect(T0)
    session.on_open(T0)
    assert ops(session.take_outbox()) == ["auth"]
    session.on_message(recorded("F04b"), T0 + 1)  # a pong is not an auth ack
    for dt in (2.0, 5.0, 9.9):
        session.tick(T0 + dt)
    assert session.take_outbox() == []
    assert session.state is S.AUTHENTICATING
    session.on_message(recorded("F01"), T0 + 9.95)
    (subscribe,) = sent(session.take_outbox())
    assert subscribe["op"] == "subscribe"
    assert subscribe["args"] == ["position"]


def test_order_entry_auth_shape_is_accepted() -> None:
    session = private_session()
    session.start_connect(T0)
    session.on_open(T0)
    ack = decode_ws('{"op":"auth","retCode":0,"retMsg":"OK","connId":"cq-1"}')
    session.on_message(ack, T0)
    assert session.state is S.SUBSCRIBING


def test_params_error_closes_and_backs_off_instead_of_looping() -> None:
    config = SessionConfig(
        backoff=BackoffPolicy(jitter_ratio=0.0),
        auth_retry_backoff=BackoffPolicy(initial_s=2.0, max_s=60.0, jitter_ratio=0.0),
    )
    session = private_session(config)
    now = T0
    delays = []
    for _ in range(8):
        session.start_connect(now)
        session.on_open(now)
        events = session.on_message(recorded("F02"), now)
        assert AuthFailed("private", "Params Error") in events
        assert session.state is S.CLOSING
        assert session.close_requested == "auth rejected: Params Error"
        assert "subscribe" not in ops(session.take_outbox())
        session.on_close(now, "closed after auth failure")
        assert session.reconnect_at is not None
        delays.append(session.reconnect_at - now)
        now = session.reconnect_at
    # The longer of the reconnect backoff and the auth-retry one (issue 18): 2 s doubling to 60.
    assert delays == [2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0]


def _rejected(session: ConnectionSession, now: float) -> None:
    session.start_connect(now)
    session.on_open(now)
    session.on_message(recorded("F02"), now)
    session.on_close(now, "closed after auth failure")


def test_an_accepted_auth_resets_the_auth_retry_wait() -> None:
    session = private_session()  # production timings: reconnects within 3 s
    now = T0
    for _ in range(4):
        _rejected(session, now)
        assert session.reconnect_at is not None
        now = session.reconnect_at
    assert now - T0 > 3 * 3.0  # four waits: slower than plain reconnects (at most 3 s each)
    session.start_connect(now)
    session.on_open(now)
    session.on_message(recorded("F01"), now)  # auth accepted
    session.on_close(now + 1, "dropped")
    assert session.reconnect_at is not None and session.reconnect_at - (now + 1) <= 3.0


def test_another_socket_getting_through_does_not_release_a_rejected_one() -> None:
    session = private_session()
    _rejected(session, T0)
    at = session.reconnect_at
    assert at is not None
    assert session.reconnect_now(T0 + 0.1) is False
    assert session.reconnect_at == at


def test_auth_reply_timeout_declares_the_socket_dead() -> None:
    session = private_session()
    session.start_connect(T0)
    session.on_open(T0)
    assert session.next_deadline() == T0 + 10
    assert session.tick(T0 + 9.9) == []
    events = session.tick(T0 + 10)
    assert SocketDead("private", "no auth reply within 10 s") in events
    assert session.close_requested == "no auth reply within 10 s"


def test_connect_timeout_declares_the_socket_dead() -> None:
    session = public_session()
    session.start_connect(T0)
    assert session.next_deadline() == T0 + 10
    events = session.tick(T0 + 10)
    assert SocketDead("public-1", "no open within 10 s") in events
    assert session.state is S.CLOSING


def test_a_late_duplicate_auth_reply_is_ignored() -> None:
    session = live_private()
    assert session.on_message(recorded("F02"), T0 + 1) == []
    assert session.state is S.LIVE
    assert session.close_requested is None


# --- heartbeat --------------------------------------------------------------------------------


@pytest.mark.parametrize("private", [False, True], ids=["public", "private"])
@pytest.mark.parametrize("pong", ["F03", "F03b", "F04", "F04b"])
def test_both_pong_shapes_count_as_liveness_on_both_sockets(private: bool, pong: str) -> None:
    session = live_private() if private else live_public()
    session.tick(T0 + 20)
    assert ops(session.take_outbox()) == ["ping"]
    assert session.next_deadline() == T0 + 25  # stale check comes before the pong deadline
    session.on_message(recorded(pong), T0 + 21)
    assert session.tick(T0 + 30) == []
    assert session.close_requested is None
    assert session.state is S.LIVE


@pytest.mark.parametrize(("pong", "rtt_s"), [("F03", 0.5), ("F04b", 0.5), ("F03b", None)])
def test_rtt_is_measured_when_the_pong_can_be_ours(pong: str, rtt_s: float | None) -> None:
    # F03 echoes req_id "" and F04b none: both can be ours. F03b echoes someone else's id.
    session = live_public()
    session.tick(T0 + 20)
    events = session.on_message(recorded(pong), T0 + 20.5)
    expected = [] if rtt_s is None else [HeartbeatRtt("public-1", rtt_s)]
    assert [e for e in events if isinstance(e, HeartbeatRtt)] == expected


def test_rtt_matches_our_echoed_ping_req_id() -> None:
    session = live_private()
    session.tick(T0 + 20)
    (ping,) = sent(session.take_outbox())
    events = session.on_message(recorded("F04", str(ping["req_id"])), T0 + 20.25)
    assert events == [HeartbeatRtt("private", 0.25)]


def test_pings_keep_their_cadence() -> None:
    session = live_public()
    for n in range(1, 4):
        assert session.next_deadline() == T0 + 20 * n
        session.tick(T0 + 20 * n)
        assert ops(session.take_outbox()) == ["ping"]
        session.on_message(recorded("F03"), T0 + 20 * n + 0.1)


def test_missing_pong_requests_a_close_and_the_shell_completes_it() -> None:
    session = live_public(BTC)
    session.tick(T0 + 20)
    session.take_outbox()
    session.tick(T0 + 25)  # STALE first
    assert session.next_deadline() == T0 + 30
    events = session.tick(T0 + 30)
    reason = "no pong or data within 10 s of ping"
    assert SocketDead("public-1", reason) in events
    assert states(events) == [(S.STALE, S.CLOSING)]
    assert session.close_requested == reason
    assert session.next_deadline() is None
    assert session.tick(T0 + 100) == []
    assert session.take_outbox() == []
    assert session.on_message(recorded("F03"), T0 + 31) == []  # late frames are ignored
    events = session.on_close(T0 + 31, "closed by shell")
    assert states(events) == [(S.CLOSING, S.DISCONNECTED)]
    assert session.close_requested is None
    assert session.reconnect_at is not None and session.reconnect_at > T0 + 31
    assert session.subscriptions.state_of(BTC) is TopicState.IDLE


def test_data_counts_as_liveness_after_a_ping() -> None:
    session = live_public(BTC)
    session.tick(T0 + 20)
    session.on_message(recorded("F10"), T0 + 21)
    assert session.tick(T0 + 30) == []
    assert session.state is S.LIVE


def _dead_at(session: ConnectionSession, start: float, until: float) -> float | None:
    """Ticks a socket that receives nothing from `start` on; when it was declared dead."""
    now = start
    while now <= until:
        if any(isinstance(e, SocketDead) for e in session.tick(now)):
            return now
        session.take_outbox()
        now = round(now + 0.1, 6)
    return None


def test_a_silent_private_socket_is_dead_within_its_short_heartbeat() -> None:
    # Issue 19 F2: TCP up, nothing arrives. The private socket pings every 3 s and wants the
    # pong within 2 s, so it is dead at most 5 s after its last frame (it was 20 s + 10 s).
    session = live_private(config=SessionConfig())
    assert (session.config.ping_interval_s, session.config.pong_timeout_s) == (3.0, 2.0)
    dead_at = _dead_at(session, T0, T0 + 40)
    assert dead_at is not None and dead_at - T0 <= 5.0
    assert session.close_requested == "no pong or data within 2 s of ping"


def test_a_silent_private_socket_is_never_stale_for_longer_than_its_pong_wait() -> None:
    # stale_after_s is capped at ping + pong (5 s): a silent private socket is never left
    # STALE (the account's feed down, the socket not replaced) past the pong verdict.
    session = live_private(config=SessionConfig())
    assert session.config.stale_after_s == 5.0
    session.tick(T0 + 3)  # ping out
    session.take_outbox()
    assert states(session.tick(T0 + 4.9)) == []
    assert states(session.tick(T0 + 5.0)) == [(S.LIVE, S.CLOSING)]


def test_a_quiet_private_socket_answering_pongs_stays_live() -> None:
    session = live_private(config=SessionConfig())
    for n in range(1, 11):
        assert states(session.tick(T0 + 3 * n)) == []
        assert ops(session.take_outbox()) == ["ping"]
        session.on_message(recorded("F04"), T0 + 3 * n + 0.5)
        assert session.tick(T0 + 3 * n + 2.9) == []  # stale/pong checks pass: a pong came
    assert session.state is S.LIVE and session.close_requested is None


def test_the_public_socket_keeps_bybits_recommended_20_s_ping() -> None:
    session = live_public(BTC)
    assert (session.config.ping_interval_s, session.config.pong_timeout_s) == (20.0, 10.0)
    assert session.next_deadline() == T0 + 20


@pytest.mark.parametrize(
    ("config", "private"),
    [
        # A shorter public heartbeat (the scaled test harnesses) applies to both sockets.
        (SessionConfig(ping_interval_s=1, pong_timeout_s=0.5, stale_after_s=1.5), (1, 0.5, 1.5)),
        # Bybit's plain 20 s for the private socket too: set its heartbeat to the public one.
        (
            SessionConfig(private_ping_interval_s=20, private_pong_timeout_s=10),
            (20, 10, 25),
        ),
        (SessionConfig(private_ping_interval_s=4, private_pong_timeout_s=1), (4, 1, 5)),
    ],
)
def test_the_private_heartbeat_is_the_shorter_of_both(
    config: SessionConfig, private: tuple[float, float, float]
) -> None:
    derived = config.for_private()
    assert (derived.ping_interval_s, derived.pong_timeout_s, derived.stale_after_s) == private


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"private_ping_interval_s": 0}, "private_ping_interval_s must be > 0"),
        ({"private_pong_timeout_s": 3}, "private_pong_timeout_s must be below"),
    ],
)
def test_a_private_heartbeat_that_cannot_work_is_refused(
    kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        SessionConfig(**kwargs)


# --- staleness --------------------------------------------------------------------------------


def test_stale_after_silence_and_back_to_live_on_the_next_frame() -> None:
    session = live_public(BTC)
    session.on_message(recorded("F10"), T0 + 1)
    session.tick(T0 + 20)  # ping out
    assert session.tick(T0 + 25.9) == []
    events = session.tick(T0 + 26)
    assert states(events) == [(S.LIVE, S.STALE)]
    assert events[0] == StateChanged("public-1", S.LIVE, S.STALE, "no frame for 25 s")
    assert session.close_requested is None  # STALE is a warning, not a close
    events = session.on_message(recorded("F12"), T0 + 27)
    assert events == [StateChanged("public-1", S.STALE, S.LIVE, "data resumed")]


# --- subscriptions through the session --------------------------------------------------------


def test_public_open_subscribes_at_once_and_goes_live_on_the_acks() -> None:
    session = public_session(BTC, "tickers.ETHUSDT")
    session.start_connect(T0)
    session.on_open(T0)
    assert session.state is S.SUBSCRIBING
    (request,) = sent(session.take_outbox())
    assert request == {"req_id": "public-1-1", "op": "subscribe", "args": [BTC, "tickers.ETHUSDT"]}
    events = session.on_message(recorded("F05", "public-1-1"), T0 + 0.1)
    assert states(events) == [(S.SUBSCRIBING, S.LIVE)]


def test_public_with_nothing_to_subscribe_is_live_on_open() -> None:
    session = public_session()
    session.start_connect(T0)
    events = session.on_open(T0)
    assert states(events) == [(S.CONNECTING, S.SUBSCRIBING), (S.SUBSCRIBING, S.LIVE)]
    assert session.take_outbox() == []


def test_a_bad_topic_does_not_hold_the_socket_in_subscribing() -> None:
    session = public_session(BTC, BAD)
    session.start_connect(T0)
    session.on_open(T0)
    session.take_outbox()
    events = session.on_message(recorded("F07", "public-1-1"), T0 + 0.1)
    assert SubscriptionFailed("public-1", BAD, f"error:handler not found,topic:{BAD}", False) in (
        events
    )
    (retry,) = sent(session.take_outbox())
    assert retry["args"] == [BTC]
    session.on_message(recorded("F05", str(retry["req_id"])), T0 + 0.2)
    assert session.state is S.LIVE
    assert session.next_deadline() == T0 + 1.1  # BAD's retry
    session.tick(T0 + 1.1)
    assert sent(session.take_outbox())[0]["args"] == [BAD]


def test_topics_added_and_removed_while_live_go_out_at_once() -> None:
    session = live_public()
    session.add_topic(BTC, T0 + 1)
    (subscribe,) = sent(session.take_outbox())
    assert subscribe["args"] == [BTC]
    session.on_message(recorded("F05", str(subscribe["req_id"])), T0 + 1.1)
    session.remove_topic(BTC, T0 + 2)
    (unsubscribe,) = sent(session.take_outbox())
    assert unsubscribe["op"] == "unsubscribe"
    assert unsubscribe["args"] == [BTC]


def test_topics_added_while_disconnected_wait_for_the_socket() -> None:
    session = public_session()
    session.add_topic(BTC, T0)
    assert session.take_outbox() == []
    session.start_connect(T0)
    session.on_open(T0)
    assert sent(session.take_outbox())[0]["args"] == [BTC]


def test_all_topics_are_restored_after_a_reconnect() -> None:
    session = live_public(BTC, "tickers.ETHUSDT")
    session.tick(T0 + 20)
    session.on_close(T0 + 21, "connection reset")
    assert session.take_outbox() == []  # the unsent ping died with the socket
    assert session.reconnect_at is not None
    now = session.reconnect_at
    session.start_connect(now)
    session.on_open(now)
    (request,) = sent(session.take_outbox())
    assert request["args"] == [BTC, "tickers.ETHUSDT"]
    assert request["req_id"] != "public-1-1"  # a late reply to the old request can't match


def test_private_restores_auth_then_position_after_a_reconnect() -> None:
    session = live_private()
    session.on_close(T0 + 5, "1006")
    assert session.reconnect_at is not None
    now = session.reconnect_at
    session.start_connect(now)
    session.on_open(now)
    assert ops(session.take_outbox()) == ["auth"]
    session.on_message(recorded("F01"), now)
    assert sent(session.take_outbox())[0]["args"] == ["position"]


# --- reconnect and backoff --------------------------------------------------------------------


def test_backoff_resets_only_after_a_healthy_live_stretch() -> None:
    config = SessionConfig(backoff=BackoffPolicy(jitter_ratio=0.0))
    session = public_session(config=config)
    now = T0
    for _ in range(4):  # four failed dials: 0.5, 1, 2, 4
        session.start_connect(now)
        session.on_close(now, "refused")
        assert session.reconnect_at is not None
        now = session.reconnect_at
    session.start_connect(now)
    session.on_open(now)  # LIVE at once (nothing to subscribe)
    session.on_close(now + 59, "flapped")
    assert session.reconnect_at == now + 59 + 8.0  # not healthy long enough: keeps growing
    now = session.reconnect_at
    session.start_connect(now)
    session.on_open(now)
    for dt in (20.0, 40.0, 60.0):
        session.tick(now + dt)
        session.on_message(recorded("F03"), now + dt)
    assert session.backoff.failures == 0
    session.on_close(now + 61, "dropped")
    assert session.reconnect_at == now + 61 + 0.5


def test_close_on_a_healthy_socket_resets_the_backoff_even_without_a_tick() -> None:
    config = SessionConfig(backoff=BackoffPolicy(jitter_ratio=0.0))
    session = public_session(config=config)
    session.backoff.next_delay()
    session.backoff.next_delay()
    session.start_connect(T0)
    session.on_open(T0)
    session.on_close(T0 + 60, "dropped")
    assert session.reconnect_at == T0 + 60 + 0.5


def test_close_without_reconnect_leaves_no_reconnect_time() -> None:
    session = live_public(BTC)
    session.close("shutdown", reconnect=False)
    assert session.close_requested == "shutdown"
    session.on_close(T0 + 1, "closed")
    assert session.reconnect_at is None
    assert session.state is S.DISCONNECTED


def test_close_while_disconnected_can_cancel_the_reconnect() -> None:
    session = live_public()
    session.on_close(T0 + 1, "reset")
    assert session.reconnect_at is not None
    assert session.close("shutdown", reconnect=False) == []
    assert session.reconnect_at is None


# --- deadlines --------------------------------------------------------------------------------


def test_next_deadline_per_state() -> None:
    session = private_session()
    assert session.next_deadline() is None  # DISCONNECTED
    session.start_connect(T0)
    assert session.next_deadline() == T0 + 10  # connect timeout
    session.on_open(T0 + 1)
    assert session.next_deadline() == T0 + 11  # auth reply timeout (before the ping at +21)
    session.on_message(recorded("F01"), T0 + 2)
    assert session.next_deadline() == T0 + 12  # the position subscribe's ack timeout
    session.on_message(recorded("F06"), T0 + 3)
    assert session.next_deadline() == T0 + 21  # ping (stale at +28, healthy at +63)
    session.tick(T0 + 21)
    assert session.next_deadline() == T0 + 28  # stale, before the pong deadline at +31
    session.on_message(recorded("F04b"), T0 + 22)
    assert session.next_deadline() == T0 + 41  # next ping (stale at +47)
    session.close("bye")
    assert session.next_deadline() is None  # CLOSING: waiting for the shell


def test_after_a_tick_the_next_deadline_is_always_later() -> None:
    """A shell that sleeps until next_deadline() and ticks must never spin."""
    session = live_public(BTC)
    session.add_topic(BAD, T0)
    now = T0
    for _ in range(100):
        deadline = session.next_deadline()
        assert deadline is not None and deadline > now
        now = deadline
        session.tick(now)
        for request in sent(session.take_outbox()):
            if request["op"] == "ping":
                session.on_message(recorded("F03"), now)
            elif request["args"] == [BAD]:
                session.on_message(recorded("F07", str(request["req_id"])), now)
    assert session.subscriptions.failed == {BAD: f"error:handler not found,topic:{BAD}"}
    assert session.state is S.LIVE


# --- construction -----------------------------------------------------------------------------


def test_private_session_needs_credentials() -> None:
    with pytest.raises(ValueError, match="needs credentials"):
        ConnectionSession(
            "private",
            private=True,
            credentials=None,
            config=SessionConfig(),
            subscriptions=public_session().subscriptions,
        )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ping_interval_s": 0}, "ping_interval_s must be > 0"),
        ({"pong_timeout_s": 20}, "pong_timeout_s must be below ping_interval_s"),
        ({"stale_after_s": 15}, "stale_after_s must exceed ping_interval_s"),
        ({"max_active_time_s": 20}, "ping_interval_s must stay below max_active_time_s"),
    ],
)
def test_config_rejects_settings_that_would_break_the_heartbeat(
    kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        SessionConfig(**kwargs)


def test_sent_frames_are_plain_json_strings() -> None:
    session = public_session(BTC)
    session.start_connect(T0)
    session.on_open(T0)
    for text in session.take_outbox():
        assert isinstance(text, str)
        json.loads(text)


# --- idle ping on a quiet public socket (issue 19: a quiet shard) ---------------------------

IDLE = SessionConfig(idle_ping_s=2.0)


def _live_quiet(config: SessionConfig = IDLE) -> ConnectionSession:
    session = public_session(BTC, config=config)
    session.start_connect(T0)
    session.on_open(T0)
    for request in sent(session.take_outbox()):
        session.on_message(recorded("F05", str(request["req_id"])), T0)
    assert session.state is S.LIVE
    return session


def test_a_quiet_public_socket_pings_after_idle_ping_s_and_is_heard_from_that_often() -> None:
    """Bybit pushes nothing on a shard whose symbols do not change: only our pings make it
    talk. With the 20 s cadence it is unheard-from for 20 s at a time; with `idle_ping_s` it
    is heard every 2 s + RTT, so a 5 s mark staleness never mistakes it for a dead one."""
    session = _live_quiet()
    heard = [T0]
    t = T0
    for _ in range(15):  # 30 s of a quiet shard
        assert session.next_deadline() == t + 2.0
        session.tick(t + 2.0)
        assert ops(session.take_outbox()) == ["ping"]
        t += 2.1  # the pong, 0.1 s later
        session.on_message(recorded("F03"), t)
        heard.append(t)
    assert max(b - a for a, b in itertools.pairwise(heard)) <= 2.1 + 1e-9
    assert session.close_requested is None and session.state is S.LIVE


def test_a_black_holed_quiet_public_socket_is_dead_within_twice_idle_ping_s() -> None:
    """The same quiet socket black-holed right after its last frame: the idle ping at 2 s gets
    no pong within 2 s, so the close is requested 4 s after the last frame (20 s + 10 s
    without `idle_ping_s`)."""
    session = _live_quiet()
    session.tick(T0 + 2.0)
    assert ops(session.take_outbox()) == ["ping"]
    assert session.next_deadline() == T0 + 4.0
    assert session.tick(T0 + 3.99) == [] and session.close_requested is None
    session.tick(T0 + 4.0)
    assert session.close_requested is not None
    plain = _live_quiet(SessionConfig())
    assert plain.next_deadline() == T0 + 20.0
    plain.tick(T0 + 20.0)
    plain.tick(T0 + 29.99)
    assert plain.close_requested is None


def test_a_busy_public_socket_sends_no_idle_ping_and_keeps_the_20_s_cadence() -> None:
    session = _live_quiet()
    pings = 0
    for step in range(1, 401):  # 40 s of data every 0.1 s
        t = T0 + step / 10
        session.on_message(recorded("F03"), t)  # any frame will do as data here
        session.tick(t)
        pings += ops(session.take_outbox()).count("ping")
    assert pings == 2  # at 20 s and 40 s: the regular cadence only


def test_an_idle_pings_pong_is_due_within_idle_ping_s_and_it_restarts_the_cadence() -> None:
    config = SessionConfig(ping_interval_s=3.0, pong_timeout_s=2.5, idle_ping_s=2.0)
    session = _live_quiet(config)
    session.tick(T0 + 2.0)  # idle ping: the pong is due at 4.0, not 4.5
    assert ops(session.take_outbox()) == ["ping"]
    session.on_message(recorded("F03"), T0 + 2.2)
    assert session.next_deadline() == pytest.approx(T0 + 4.2)  # the next idle ping
    session.tick(T0 + 4.2)
    assert ops(session.take_outbox()) == ["ping"]
    session.tick(T0 + 6.19)
    assert session.close_requested is None
    session.tick(T0 + 6.2)
    assert session.close_requested is not None


def test_the_private_socket_ignores_idle_ping_s() -> None:
    session = live_private(config=IDLE)
    deadline = session.next_deadline()
    assert deadline is not None and deadline == pytest.approx(T0 + 3.0)  # its own 3 s ping


@pytest.mark.parametrize("idle_s", [0.0, -1.0])
def test_idle_ping_s_must_be_positive(idle_s: float) -> None:
    with pytest.raises(ValueError, match="idle_ping_s must be > 0"):
        SessionConfig(idle_ping_s=idle_s)
