"""SubscriptionSet: batching, acks, whole-frame failures, give-up, unsubscribe, restore."""

from __future__ import annotations

import pytest

from bybit_hybrid.protocol.errors import IllegalTransition, next_state
from bybit_hybrid.protocol.subscriptions import (
    TOPIC_TRANSITIONS,
    SubscriptionConfig,
    SubscriptionConfirmed,
    SubscriptionFailed,
    SubscriptionSet,
    SubscriptionStatus,
    TopicState,
    TopicTrigger,
    Unsubscribed,
    private_subscriptions,
)
from bybit_hybrid.wire.decode import OpReply
from tests.unit.protocol.session_helpers import T0, recorded, reply, sent

BAD = "orderbook.50.NOPEUSDT"  # named by F07
ETH = "orderbook.1.ETHUSDT"  # named by F08
NOT_FOUND = f"error:handler not found,topic:{BAD}"


def tickers(n: int) -> list[str]:
    return [f"tickers.S{i:03d}USDT" for i in range(n)]


def subs(*topics: str, **config: float) -> SubscriptionSet:
    subscriptions = SubscriptionSet("public-1", SubscriptionConfig(**config))  # type: ignore[arg-type]
    for topic in topics:
        subscriptions.add(topic)
    return subscriptions


def answer(s: SubscriptionSet, fixture: str, req_id: str, now: float = T0) -> list[object]:
    message = recorded(fixture, req_id)
    assert isinstance(message, OpReply)
    return list(s.on_reply(message, now))


def op_reply(op: str, req_id: str, *, ok: bool = True, ret_msg: str = "") -> OpReply:
    message = reply(op, req_id, ok=ok, ret_msg=ret_msg)
    assert isinstance(message, OpReply)
    return message


# --- batching ---------------------------------------------------------------------------------


def test_topics_are_batched_ten_per_frame_with_deterministic_req_ids() -> None:
    topics = tickers(25)
    s = subs(*topics)
    frames = sent(s.take_frames(T0))
    assert [f["req_id"] for f in frames] == ["public-1-1", "public-1-2", "public-1-3"]
    assert [f["args"] for f in frames] == [topics[:10], topics[10:20], topics[20:]]
    assert {f["op"] for f in frames} == {"subscribe"}
    assert s.take_frames(T0) == []  # nothing is sent twice while pending
    assert s.pending == frozenset(topics)


def test_batch_size_is_configurable() -> None:
    s = subs(*tickers(5), max_topics_per_frame=2)
    assert [len(f["args"]) for f in sent(s.take_frames(T0))] == [2, 2, 1]  # type: ignore[arg-type]


def test_position_and_position_linear_never_share_a_request() -> None:
    s = subs("position", "position.linear", "order", "wallet")
    frames = [f["args"] for f in sent(s.take_frames(T0))]
    assert frames == [["position", "order", "wallet"], ["position.linear"]]


def test_private_set_desires_just_position() -> None:
    s = private_subscriptions()
    assert s.desired == frozenset({"position"})
    assert sent(s.take_frames(T0)) == [
        {"req_id": "private-1", "op": "subscribe", "args": ["position"]}
    ]


# --- acks -------------------------------------------------------------------------------------


def test_success_confirms_every_topic_in_the_frame() -> None:
    s = subs("tickers.BTCUSDT", "tickers.ETHUSDT")
    s.take_frames(T0)
    events = answer(s, "F05", "public-1-1")
    assert events == [
        SubscriptionConfirmed("public-1", "tickers.BTCUSDT"),
        SubscriptionConfirmed("public-1", "tickers.ETHUSDT"),
    ]
    assert s.pending == frozenset()
    assert s.confirmed == frozenset({"tickers.BTCUSDT", "tickers.ETHUSDT"})
    assert not s.has_requests_in_flight()


def test_private_replies_without_req_id_match_the_oldest_request() -> None:
    s = SubscriptionSet("private")
    s.add("position")
    s.add("position.linear")  # split into a second frame
    s.take_frames(T0)
    first = recorded("F06")
    assert isinstance(first, OpReply) and first.req_id is None
    assert s.on_reply(first, T0) == [SubscriptionConfirmed("private", "position")]
    assert s.state_of("position.linear") is TopicState.SUBSCRIBING


def test_unknown_req_ids_and_other_ops_are_ignored() -> None:
    s = subs("tickers.BTCUSDT")
    s.take_frames(T0)
    assert answer(s, "F05", "probe-pp") == []  # the fixture's own id: not ours
    auth = recorded("F01")
    assert isinstance(auth, OpReply)
    assert s.on_reply(auth, T0) == []
    assert s.pending == frozenset({"tickers.BTCUSDT"})


# --- whole-frame failures ---------------------------------------------------------------------


def test_handler_not_found_splits_the_frame_and_isolates_the_bad_topic() -> None:
    good = tickers(3)
    s = subs(good[0], BAD, good[1], good[2])
    s.take_frames(T0)
    events = answer(s, "F07", "public-1-1", T0 + 0.1)
    assert events == [SubscriptionFailed("public-1", BAD, NOT_FOUND, gave_up=False)]
    # No topic of the frame was subscribed: the innocent ones go again at once, without BAD.
    assert sent(s.take_frames(T0 + 0.1)) == [
        {"req_id": "public-1-2", "op": "subscribe", "args": good}
    ]
    assert s.next_deadline() == pytest.approx(T0 + 1.1)  # BAD's retry (ack timeout is later)
    assert s.take_frames(T0 + 1.0) == []
    assert sent(s.take_frames(T0 + 1.1)) == [
        {"req_id": "public-1-3", "op": "subscribe", "args": [BAD]}
    ]


def test_a_bad_topic_retried_alone_never_rejoins_a_batch() -> None:
    s = subs(BAD)
    s.take_frames(T0)
    answer(s, "F07", "public-1-1")
    s.add("tickers.BTCUSDT")
    s.add("tickers.ETHUSDT")
    frames = [f["args"] for f in sent(s.take_frames(T0 + 5))]
    assert frames == [[BAD], ["tickers.BTCUSDT", "tickers.ETHUSDT"]]


def test_already_subscribed_counts_as_confirmed_and_is_not_fatal() -> None:
    s = subs(ETH)
    s.take_frames(T0)
    events = answer(s, "F08", "public-1-1")
    assert events == [SubscriptionConfirmed("public-1", ETH)]
    assert s.confirmed == frozenset({ETH})
    assert s.failed == {}
    assert s.take_frames(T0 + 100) == []


def test_already_subscribed_in_a_batch_confirms_it_and_resends_the_rest() -> None:
    s = subs("tickers.BTCUSDT", ETH, "tickers.SOLUSDT")
    s.take_frames(T0)
    assert answer(s, "F08", "public-1-1") == [SubscriptionConfirmed("public-1", ETH)]
    assert [f["args"] for f in sent(s.take_frames(T0))] == [["tickers.BTCUSDT", "tickers.SOLUSDT"]]


def test_an_unnamed_failure_bisects_the_frame() -> None:
    topics = tickers(8)
    s = subs(*topics)
    s.take_frames(T0)
    assert (
        s.on_reply(op_reply("subscribe", "public-1-1", ok=False, ret_msg="error:invalid op"), T0)
        == []
    )
    halves = [f["args"] for f in sent(s.take_frames(T0))]
    assert halves == [topics[:4], topics[4:]]
    s.on_reply(op_reply("subscribe", "public-1-2", ok=False, ret_msg="error:invalid op"), T0)
    quarters = [f["args"] for f in sent(s.take_frames(T0))]
    assert quarters == [topics[:2], topics[2:4]]


def test_a_topic_that_keeps_failing_is_given_up_and_reported() -> None:
    s = subs(BAD, max_attempts=3, retry_delay_s=1.0)
    now = T0
    outcomes = []
    for _ in range(3):
        (request,) = sent(s.take_frames(now))
        (event,) = answer(s, "F07", str(request["req_id"]), now)
        assert isinstance(event, SubscriptionFailed)
        outcomes.append(event.gave_up)
        deadline = s.next_deadline()
        now = deadline if deadline is not None else now
    assert outcomes == [False, False, True]
    assert s.state_of(BAD) is TopicState.FAILED
    assert s.failed == {BAD: NOT_FOUND}
    assert s.next_deadline() is None
    assert s.take_frames(T0 + 10_000) == []
    assert s.status() == SubscriptionStatus(
        desired=1, pending=0, confirmed=0, failed={BAD: NOT_FOUND}
    )


def test_retry_delays_grow_per_attempt() -> None:
    s = subs(BAD, max_attempts=4, retry_delay_s=1.0)
    now = T0
    delays = []
    for _ in range(3):
        (request,) = sent(s.take_frames(now))
        answer(s, "F07", str(request["req_id"]), now)
        deadline = s.next_deadline()
        assert deadline is not None
        delays.append(deadline - now)
        now = deadline
    assert delays == [1.0, 2.0, 4.0]


def test_an_unanswered_subscribe_times_out_as_a_failure() -> None:
    s = subs("tickers.BTCUSDT", ack_timeout_s=10.0)
    s.take_frames(T0)
    assert s.next_deadline() == T0 + 10
    assert s.tick(T0 + 9.9) == []
    events = s.tick(T0 + 10)
    assert events == [
        SubscriptionFailed("public-1", "tickers.BTCUSDT", "no reply within 10 s", gave_up=False)
    ]
    assert not s.has_requests_in_flight()
    assert answer(s, "F05", "public-1-1") == []  # a reply after the timeout is stale


# --- unsubscribe ------------------------------------------------------------------------------


def test_a_confirmed_topic_no_longer_desired_is_unsubscribed() -> None:
    s = subs("tickers.BTCUSDT", "tickers.ETHUSDT")
    s.take_frames(T0)
    answer(s, "F05", "public-1-1")
    s.discard("tickers.BTCUSDT")
    assert sent(s.take_frames(T0 + 1)) == [
        {"req_id": "public-1-2", "op": "unsubscribe", "args": ["tickers.BTCUSDT"]}
    ]
    assert "tickers.BTCUSDT" in s.confirmed  # live on the server until the ack
    assert answer(s, "F09", "public-1-2") == [Unsubscribed("public-1", "tickers.BTCUSDT")]
    assert s.confirmed == frozenset({"tickers.ETHUSDT"})
    assert s.state_of("tickers.BTCUSDT") is None


def test_a_pending_topic_no_longer_desired_is_unsubscribed_after_its_ack() -> None:
    s = subs("tickers.BTCUSDT")
    s.take_frames(T0)
    s.discard("tickers.BTCUSDT")
    assert s.take_frames(T0) == []  # nothing to unsubscribe yet
    assert answer(s, "F05", "public-1-1") == []  # not reported: nobody wants it
    assert sent(s.take_frames(T0 + 1)) == [
        {"req_id": "public-1-2", "op": "unsubscribe", "args": ["tickers.BTCUSDT"]}
    ]
    answer(s, "F09", "public-1-2")
    assert s.confirmed == frozenset()


def test_a_pending_topic_dropped_then_rejected_is_forgotten_silently() -> None:
    s = subs(BAD)
    s.take_frames(T0)
    s.discard(BAD)
    assert answer(s, "F07", "public-1-1") == []
    assert s.state_of(BAD) is None
    assert s.take_frames(T0 + 100) == []


def test_a_topic_wanted_again_during_its_unsubscribe_is_resubscribed_after_the_ack() -> None:
    s = subs("tickers.BTCUSDT")
    s.take_frames(T0)
    answer(s, "F05", "public-1-1")
    s.discard("tickers.BTCUSDT")
    s.take_frames(T0)
    s.add("tickers.BTCUSDT")
    assert s.take_frames(T0) == []  # wait: the unsubscribe is still in flight
    answer(s, "F09", "public-1-2")
    assert sent(s.take_frames(T0)) == [
        {"req_id": "public-1-3", "op": "subscribe", "args": ["tickers.BTCUSDT"]}
    ]


def test_a_failed_unsubscribe_is_reported_and_dropped() -> None:
    s = subs("tickers.BTCUSDT")
    s.take_frames(T0)
    answer(s, "F05", "public-1-1")
    s.discard("tickers.BTCUSDT")
    s.take_frames(T0)
    message = op_reply("unsubscribe", "public-1-2", ok=False, ret_msg="error:not subscribed")
    assert s.on_reply(message, T0) == [
        Unsubscribed("public-1", "tickers.BTCUSDT", "error:not subscribed")
    ]
    assert s.confirmed == frozenset()


def test_set_desired_replaces_the_whole_set() -> None:
    s = subs("a.1", "b.1")
    s.set_desired(["b.1", "c.1"])
    assert s.desired == frozenset({"b.1", "c.1"})
    assert [f["args"] for f in sent(s.take_frames(T0))] == [["b.1", "c.1"]]


# --- reconnects -------------------------------------------------------------------------------


def test_everything_desired_is_restored_after_a_disconnect() -> None:
    s = subs("tickers.A", "tickers.B", "tickers.C", BAD, max_topics_per_frame=1, max_attempts=1)
    s.take_frames(T0)
    answer(s, "F05", "public-1-1")  # A confirmed, B and C pending
    answer(s, "F07", "public-1-4")  # BAD given up on this connection
    assert s.failed == {BAD: NOT_FOUND}
    s.on_disconnect()
    assert s.confirmed == frozenset() and s.pending == frozenset()
    assert not s.has_requests_in_flight()
    restored = [f["args"][0] for f in sent(s.take_frames(T0 + 1))]  # type: ignore[index]
    assert restored == ["tickers.A", "tickers.B", "tickers.C", BAD]
    assert answer(s, "F05", "public-1-2") == []  # the old connection's reply can't match


def test_undesired_topics_are_forgotten_on_disconnect() -> None:
    s = subs("tickers.A")
    s.take_frames(T0)
    answer(s, "F05", "public-1-1")
    s.discard("tickers.A")
    s.on_disconnect()
    assert s.state_of("tickers.A") is None
    assert s.take_frames(T0) == []


def test_status_counts() -> None:
    s = subs("tickers.A", "tickers.B", BAD, max_topics_per_frame=1, max_attempts=1)
    s.take_frames(T0)
    answer(s, "F05", "public-1-1")
    answer(s, "F07", "public-1-3")
    assert s.status() == SubscriptionStatus(
        desired=3, pending=1, confirmed=1, failed={BAD: NOT_FOUND}
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_topics_per_frame": 0}, "max_topics_per_frame"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"retry_delay_s": 5.0, "retry_max_delay_s": 1.0}, "retry_delay_s"),
        ({"ack_timeout_s": 0}, "ack_timeout_s"),
    ],
)
def test_config_validation(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SubscriptionConfig(**kwargs)  # type: ignore[arg-type]


def test_empty_topic_is_rejected() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        SubscriptionSet("x").add("")


def test_topic_states_move_only_along_their_table() -> None:
    assert next_state(TOPIC_TRANSITIONS, TopicState.IDLE, TopicTrigger.SEND_SUBSCRIBE) is (
        TopicState.SUBSCRIBING
    )
    for state in TopicState:
        assert TOPIC_TRANSITIONS[(state, TopicTrigger.DISCONNECTED)] is TopicState.IDLE
    with pytest.raises(IllegalTransition, match="cannot handle event acked in state confirmed"):
        next_state(TOPIC_TRANSITIONS, TopicState.CONFIRMED, TopicTrigger.ACKED)
