"""SubscriptionSet against a fake Bybit public socket under any interleaving of acks and faults.

The fake server behaves as documented (BYBIT_V5.md §4.2): one bad topic fails the whole frame
naming it; a topic already live fails the frame with `already subscribed`. Hypothesis then
chooses the order of replies, lost replies (applied by the server, never delivered), spurious
unnamed failures, clock jumps, topic churn and disconnects.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from bybit_hybrid.protocol.subscriptions import SubscriptionConfig, SubscriptionSet, TopicState
from bybit_hybrid.wire.decode import OpReply, decode_ws

GOOD = ["tickers.AUSDT", "tickers.BUSDT", "tickers.CUSDT", "tickers.DUSDT", "tickers.EUSDT"]
BAD = ["tickers.NOPE1USDT", "tickers.NOPE2USDT"]
T0 = 1_700_000_000.0
SPURIOUS = "error:invalid op"


def _reply(request: dict[str, object], *, ok: bool, ret_msg: str = "") -> OpReply:
    payload = {
        "success": ok,
        "ret_msg": ret_msg,
        "conn_id": "fake",
        "req_id": request["req_id"],
        "op": request["op"],
    }
    message = decode_ws(json.dumps(payload))
    assert isinstance(message, OpReply)
    return message


@dataclass
class FakeServer:
    live: set[str] = field(default_factory=set)
    inbox: list[dict[str, object]] = field(default_factory=list)

    def process(self, request: dict[str, object]) -> OpReply:
        topics = [str(t) for t in request["args"]]  # type: ignore[attr-defined]
        if request["op"] == "unsubscribe":
            self.live -= set(topics)
            return _reply(request, ok=True)
        bad = [t for t in topics if t in BAD]
        if bad:
            return _reply(request, ok=False, ret_msg=f"error:handler not found,topic:{bad[0]}")
        dup = [t for t in topics if t in self.live]
        if dup:
            return _reply(request, ok=False, ret_msg=f"error:already subscribed,topic:{dup[0]}")
        self.live |= set(topics)
        return _reply(request, ok=True)


topics = st.sampled_from(GOOD + BAD)
steps = st.one_of(
    st.tuples(st.just("add"), topics),
    st.tuples(st.just("discard"), topics),
    st.tuples(st.just("answer"), st.integers(0, 20)),
    st.tuples(st.just("lose"), st.integers(0, 20)),
    st.tuples(st.just("spurious"), st.integers(0, 20)),
    st.tuples(st.just("tick"), st.floats(0, 15)),
    st.tuples(st.just("disconnect"), st.none()),
)


class Harness:
    def __init__(self, max_per_frame: int) -> None:
        config = SubscriptionConfig(max_topics_per_frame=max_per_frame, ack_timeout_s=10.0)
        self.client = SubscriptionSet("public-1", config)
        self.server = FakeServer()
        self.now = T0

    def flush(self) -> None:
        self.server.inbox += [json.loads(f) for f in self.client.take_frames(self.now)]

    def deliver(self, index: int, *, lose: bool = False, spurious: bool = False) -> None:
        if not self.server.inbox:
            return
        request = self.server.inbox.pop(index % len(self.server.inbox))
        if spurious:  # a hiccup: nothing applied, an unnamed failure
            self.client.on_reply(_reply(request, ok=False, ret_msg=SPURIOUS), self.now)
            return
        answer = self.server.process(request)
        if lose:
            return
        self.client.on_reply(answer, self.now)
        if request["op"] == "unsubscribe" and answer.success:
            for topic in request["args"]:  # type: ignore[attr-defined]
                if topic not in self.client.desired:
                    assert topic not in self.client.confirmed, "undesired topic still confirmed"

    def step(self, kind: str, arg: object) -> None:
        if kind == "add":
            self.client.add(str(arg))
        elif kind == "discard":
            self.client.discard(str(arg))
        elif kind in ("answer", "lose", "spurious"):
            assert isinstance(arg, int)
            self.deliver(arg, lose=kind == "lose", spurious=kind == "spurious")
        elif kind == "tick":
            assert isinstance(arg, float)
            self.now += arg
            self.client.tick(self.now)
        else:
            self.client.on_disconnect()
            self.server = FakeServer()
        self.flush()
        self.check()

    def check(self) -> None:
        client = self.client
        assert not client.pending & client.confirmed, "a topic both pending and confirmed"
        held = {t for t in GOOD + BAD if client.state_of(t) is TopicState.CONFIRMED}
        assert held <= self.server.live, "confirmed a topic the server does not have"
        assert held <= client.desired, "an undesired topic left confirmed after take_frames"
        assert set(client.failed) <= client.desired
        for topic, reason in client.failed.items():
            # A good topic can only be given up for faults, never for a documented reply.
            if topic in GOOD:
                assert reason == SPURIOUS or reason.startswith("no reply within"), reason

    def settle(self) -> None:
        """A well-behaved server from now on: answer in order, advance time to each deadline."""
        for _ in range(500):
            while self.server.inbox:
                self.deliver(0)
                self.flush()
                self.check()
            deadline = self.client.next_deadline()
            if deadline is None:
                return
            self.now = max(self.now, deadline)
            self.client.tick(self.now)
            self.flush()
            self.check()
        raise AssertionError("subscriptions never settled")


@settings(max_examples=400, deadline=None)
@given(
    initial=st.lists(topics, max_size=7),
    chaos=st.lists(steps, max_size=60),
    max_per_frame=st.integers(1, 4),
)
def test_any_interleaving_keeps_the_invariants_and_settles(
    initial: list[str], chaos: list[tuple[str, object]], max_per_frame: int
) -> None:
    harness = Harness(max_per_frame)
    for topic in initial:
        harness.client.add(topic)
    harness.flush()
    for kind, arg in chaos:
        harness.step(kind, arg)
    harness.settle()

    client = harness.client
    assert not client.has_requests_in_flight()
    for topic in client.desired:
        assert topic in client.confirmed or topic in client.failed, f"{topic} neither"
    assert set(BAD) & client.desired <= set(client.failed)
    assert client.confirmed <= client.desired

    # A reconnect gives every topic a fresh budget; with no faults left, exactly the good ones
    # end confirmed and the bad ones failed.
    harness.step("disconnect", None)
    harness.settle()
    assert client.confirmed == client.desired - set(BAD)
    assert set(client.failed) == client.desired & set(BAD)
    assert harness.server.live == client.confirmed
