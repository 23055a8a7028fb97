"""Topic bookkeeping per socket: desired, pending, confirmed, failed (sharding: `shards.py`).

A `SubscriptionSet` reconciles what the product wants (`desired`) with what the server has
acknowledged. Every topic it tracks is in exactly one `TopicState`, so a topic can never be both
pending and confirmed. `take_frames(now)` turns the difference into subscribe/unsubscribe frames;
`on_reply` and `tick` fold the server's answers (and silences) back in. Bybit quirks handled:

- one bad topic fails the whole frame (§4.2, §8.7): the topic named in the error is retried alone,
  after a growing delay, the innocent rest at once; an unnamed failure halves the batch size;
- `error:already subscribed,topic:X` means X is live: confirmed, never fatal (§8.7);
- private replies carry no `req_id` (F06): they are matched to the oldest request of that op;
- `position` and `position.linear` never share a request (§4.1).

Cost: a reply or a new topic costs O(topics it touches), not O(all topics): the set keeps the
few topics that may need a frame (`_candidates`), so a connection holding ~1,100 tickers
restores after a reconnect in O(n) overall, and `next_deadline` stays cheap on every frame.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import Enum
from typing import Final

from bybit_hybrid.protocol.errors import next_state
from bybit_hybrid.wire.decode import OpReply
from bybit_hybrid.wire.frames import subscribe_frame, unsubscribe_frame

PRIVATE_TOPIC: Final = "position"
"""The private socket's one topic: all-in-one `position` (BYBIT_V5.md §6.1)."""

"""Bybit's cap on the total length of all `args` on one public connection (§4.3)."""

_ALREADY_SUBSCRIBED: Final = "already subscribed"
_SUBSCRIBE: Final = "subscribe"
_UNSUBSCRIBE: Final = "unsubscribe"


@dataclass(frozen=True, slots=True)
class SubscriptionConfig:
    """Batching and retry policy; `retry_*` grows per failed attempt of one topic."""

    max_topics_per_frame: int = 10
    max_attempts: int = 3
    retry_delay_s: float = 1.0
    retry_max_delay_s: float = 30.0
    ack_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if self.max_topics_per_frame < 1:
            raise ValueError(f"max_topics_per_frame must be >= 1, got {self.max_topics_per_frame}")
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts}")
        if self.retry_delay_s < 0 or self.retry_max_delay_s < self.retry_delay_s:
            raise ValueError("need 0 <= retry_delay_s <= retry_max_delay_s")
        if self.ack_timeout_s <= 0:
            raise ValueError(f"ack_timeout_s must be > 0, got {self.ack_timeout_s}")

    def retry_delay_after(self, attempts: int) -> float:
        """Delay before attempt `attempts + 1`: retry_delay_s doubling, capped."""
        growth = 2.0 ** min(attempts - 1, 32)
        return min(self.retry_max_delay_s, self.retry_delay_s * growth)


class TopicState(Enum):
    """Where one tracked topic stands with the server on the current connection."""

    IDLE = "idle"  # not on the server; if desired, sent when its retry time has come
    SUBSCRIBING = "subscribing"  # subscribe sent, no reply yet
    CONFIRMED = "confirmed"
    UNSUBSCRIBING = "unsubscribing"  # still live on the server until the ack
    FAILED = "failed"  # gave up on this connection; retried after the next reconnect


class TopicTrigger(Enum):
    SEND_SUBSCRIBE = "send_subscribe"
    SEND_UNSUBSCRIBE = "send_unsubscribe"
    ACKED = "acked"  # subscribe acknowledged (or "already subscribed")
    RELEASED = "released"  # its frame failed for another topic: back without a charge
    REJECTED = "rejected"  # charged an attempt; retried after a delay
    GAVE_UP = "gave_up"  # out of attempts on this connection
    UNSUBSCRIBED = "unsubscribed"  # unsubscribe acknowledged (or timed out)
    DISCONNECTED = "disconnected"


_T = TopicTrigger
_S = TopicState
TOPIC_TRANSITIONS: Final[dict[tuple[TopicState, TopicTrigger], TopicState]] = {
    (_S.IDLE, _T.SEND_SUBSCRIBE): _S.SUBSCRIBING,
    (_S.CONFIRMED, _T.SEND_UNSUBSCRIBE): _S.UNSUBSCRIBING,
    (_S.SUBSCRIBING, _T.ACKED): _S.CONFIRMED,
    (_S.SUBSCRIBING, _T.RELEASED): _S.IDLE,
    (_S.SUBSCRIBING, _T.REJECTED): _S.IDLE,
    (_S.SUBSCRIBING, _T.GAVE_UP): _S.FAILED,
    (_S.UNSUBSCRIBING, _T.UNSUBSCRIBED): _S.IDLE,
    **{(state, _T.DISCONNECTED): _S.IDLE for state in TopicState},
}


@dataclass(frozen=True, slots=True)
class SubscriptionConfirmed:
    connection: str
    topic: str


@dataclass(frozen=True, slots=True)
class SubscriptionFailed:
    """A rejected (or unanswered) subscribe; `gave_up` once `max_attempts` are spent."""

    connection: str
    topic: str
    reason: str
    gave_up: bool


@dataclass(frozen=True, slots=True)
class Unsubscribed:
    """The server dropped a topic; `reason` is empty for a clean ack, else what went wrong."""

    connection: str
    topic: str
    reason: str = ""


SubscriptionEvent = SubscriptionConfirmed | SubscriptionFailed | Unsubscribed


@dataclass(frozen=True, slots=True)
class SubscriptionStatus:
    desired: int
    pending: int
    confirmed: int
    failed: dict[str, str]


class _Topic:
    """Mutable per-topic record; `batch_cap` shrinks when frames holding it fail. `serial`
    orders records by creation (unsubscribe frames follow it)."""

    __slots__ = ("attempts", "batch_cap", "reason", "retry_at", "serial", "state")

    def __init__(self, batch_cap: int, serial: int) -> None:
        self.state = TopicState.IDLE
        self.attempts = 0
        self.retry_at = 0.0
        self.batch_cap = batch_cap
        self.reason = ""
        self.serial = serial


@dataclass(frozen=True, slots=True)
class _Request:
    req_id: str
    op: str
    topics: tuple[str, ...]
    sent_at: float


class SubscriptionSet:
    """One connection's topics. Req ids are `"{name}-{n}"`, deterministic and never reused."""

    def __init__(self, name: str, config: SubscriptionConfig | None = None) -> None:
        self.name = name
        self.config = config or SubscriptionConfig()
        # An ordered set (topic -> insertion serial): subscribe frames follow insertion order.
        self._desired: dict[str, int] = {}
        self._topics: dict[str, _Topic] = {}
        self._requests: dict[str, _Request] = {}
        self._next_req = 1
        self._serial = 0
        # Every topic that is desired and IDLE, or CONFIRMED and no longer desired, is in here
        # (a superset: others are pruned by `take_frames`).
        self._candidates: set[str] = set()

    # --- what the product wants -------------------------------------------------------------

    def add(self, topic: str) -> None:
        if not topic:
            raise ValueError("topic must be non-empty")
        if topic not in self._desired:
            self._serial += 1
            self._desired[topic] = self._serial
        if topic not in self._topics:
            self._serial += 1
            self._topics[topic] = _Topic(self.config.max_topics_per_frame, self._serial)
        self._candidates.add(topic)

    def discard(self, topic: str) -> None:
        """Stop wanting `topic`; a confirmed one is unsubscribed by the next `take_frames`."""
        self._desired.pop(topic, None)
        self._candidates.add(topic)
        self._forget_if_unused(topic)

    def set_desired(self, topics: Iterable[str]) -> None:
        wanted = dict.fromkeys(topics)
        for topic in [t for t in self._desired if t not in wanted]:
            self.discard(topic)
        for topic in wanted:
            self.add(topic)

    # --- views --------------------------------------------------------------------------------

    @property
    def desired(self) -> frozenset[str]:
        return frozenset(self._desired)

    @property
    def confirmed(self) -> frozenset[str]:
        """Topics live on the server, including ones whose unsubscribe is not yet acked."""
        live = (TopicState.CONFIRMED, TopicState.UNSUBSCRIBING)
        return frozenset(t for t, rec in self._topics.items() if rec.state in live)

    @property
    def pending(self) -> frozenset[str]:
        """Topics whose subscribe is in flight."""
        return self._in(TopicState.SUBSCRIBING)

    @property
    def failed(self) -> dict[str, str]:
        """Given-up topics and the last reason the server (or its silence) gave."""
        return {t: rec.reason for t, rec in self._topics.items() if rec.state is TopicState.FAILED}

    def state_of(self, topic: str) -> TopicState | None:
        rec = self._topics.get(topic)
        return rec.state if rec else None

    def status(self) -> SubscriptionStatus:
        return SubscriptionStatus(
            desired=len(self._desired),
            pending=len(self.pending),
            confirmed=len(self._in(TopicState.CONFIRMED) & self.desired),
            failed=self.failed,
        )

    def has_requests_in_flight(self) -> bool:
        return bool(self._requests)

    def next_deadline(self) -> float | None:
        """When `tick` (ack timeout) or `take_frames` (a retry coming due) has work."""
        if not self._requests and not self._candidates:
            return None  # the steady state: checked on every frame, so kept O(1)
        times = [req.sent_at + self.config.ack_timeout_s for req in self._requests.values()]
        times += [rec.retry_at for rec in self._waiting()]
        return min(times, default=None)

    # --- frames out ---------------------------------------------------------------------------

    def take_frames(self, now: float) -> list[str]:
        """Frames that bring the server in line with `desired`; call only on an open socket."""
        if not self._candidates:
            return []
        topics, desired = self._topics, self._desired
        stale: list[str] = []
        ready: list[str] = []
        waiting: set[str] = set()
        for topic in self._candidates:
            rec = topics.get(topic)
            if rec is None:
                continue
            if topic in desired:
                if rec.state is TopicState.IDLE:
                    if rec.retry_at <= now:
                        ready.append(topic)
                    else:
                        waiting.add(topic)
            elif rec.state is TopicState.CONFIRMED:
                stale.append(topic)
        self._candidates = waiting
        stale.sort(key=lambda t: topics[t].serial)
        ready.sort(key=desired.__getitem__)
        frames = [self._send(_UNSUBSCRIBE, batch, now) for batch in self._batches(stale)]
        frames += [self._send(_SUBSCRIBE, batch, now) for batch in self._batches(ready)]
        return frames

    def _send(self, op: str, topics: list[str], now: float) -> str:
        req_id = f"{self.name}-{self._next_req}"
        self._next_req += 1
        self._requests[req_id] = _Request(req_id, op, tuple(topics), now)
        trigger = _T.SEND_SUBSCRIBE if op == _SUBSCRIBE else _T.SEND_UNSUBSCRIBE
        for topic in topics:
            _move(self._topics[topic], trigger)
        build = subscribe_frame if op == _SUBSCRIBE else unsubscribe_frame
        return build(topics, req_id)

    def _batches(self, topics: list[str]) -> list[list[str]]:
        """First-fit batching that honours each topic's cap and the position/position.x rule.

        A batch at its cap (the least `batch_cap` of its topics) can take nothing more, so only
        batches with room are scanned: O(topics) for the usual single open batch.
        """
        batches: list[list[str]] = []
        open_batches: list[tuple[list[str], int]] = []  # (batch, its cap), in creation order
        records = self._topics
        for topic in topics:
            topic_cap = records[topic].batch_cap
            for i, (batch, batch_cap) in enumerate(open_batches):
                cap = min(batch_cap, topic_cap)
                if len(batch) < cap and not any(_must_split(topic, other) for other in batch):
                    batch.append(topic)
                    if len(batch) >= cap:
                        del open_batches[i]
                    else:
                        open_batches[i] = (batch, cap)
                    break
            else:
                batch = [topic]
                batches.append(batch)
                if topic_cap > 1:
                    open_batches.append((batch, topic_cap))
        return batches

    # --- replies in ---------------------------------------------------------------------------

    def on_reply(self, reply: OpReply, now: float) -> list[SubscriptionEvent]:
        """Folds in a subscribe/unsubscribe reply; other ops and unknown req ids are ignored."""
        request = self._match(reply)
        if request is None:
            return []
        del self._requests[request.req_id]
        if request.op == _UNSUBSCRIBE:
            reason = "" if reply.success else reply.ret_msg
            return self._unsubscribed(request.topics, reason)
        if reply.success:
            return self._confirm(request.topics)
        return self._subscribe_failed(request, reply.ret_msg, now)

    def _match(self, reply: OpReply) -> _Request | None:
        if reply.op not in (_SUBSCRIBE, _UNSUBSCRIBE):
            return None
        if reply.req_id:
            request = self._requests.get(reply.req_id)
            return request if request is not None and request.op == reply.op else None
        # No req_id echoed (private stream): Bybit answers one socket's requests in order.
        return next((r for r in self._requests.values() if r.op == reply.op), None)

    def _confirm(self, topics: Iterable[str]) -> list[SubscriptionEvent]:
        events: list[SubscriptionEvent] = []
        for topic in topics:
            rec = self._topics[topic]
            _move(rec, _T.ACKED)
            rec.attempts, rec.reason = 0, ""
            rec.batch_cap = self.config.max_topics_per_frame
            if topic in self._desired:
                events.append(SubscriptionConfirmed(self.name, topic))
            else:
                self._candidates.add(topic)  # discarded while subscribing: unsubscribe it
        return events

    def _subscribe_failed(
        self, request: _Request, reason: str, now: float
    ) -> list[SubscriptionEvent]:
        named = _named_topic(reason)
        topics = request.topics
        if named in topics and _ALREADY_SUBSCRIBED in reason:
            # Harmless: X is live. The rest of the frame is re-sent; a repeat is harmless too.
            self._release([t for t in topics if t != named])
            return self._confirm([named])
        if named in topics:
            self._release([t for t in topics if t != named])
            return self._charge(named, reason, now, batch_cap=1)
        if len(topics) == 1:
            return self._charge(topics[0], reason, now, batch_cap=1)
        # Nobody named: bisect, so a bad topic ends up alone and gets charged there.
        self._release(topics, batch_cap=max(1, len(topics) // 2))
        return []

    def _release(self, topics: Iterable[str], batch_cap: int | None = None) -> None:
        """Back to IDLE without charging an attempt: these topics were not at fault."""
        for topic in topics:
            rec = self._topics[topic]
            _move(rec, _T.RELEASED)
            self._candidates.add(topic)
            if batch_cap is not None:
                rec.batch_cap = min(rec.batch_cap, batch_cap)
            self._forget_if_unused(topic)

    def _charge(
        self, topic: str, reason: str, now: float, batch_cap: int
    ) -> list[SubscriptionEvent]:
        rec = self._topics[topic]
        if topic not in self._desired:
            self._release([topic])
            return []
        rec.attempts += 1
        rec.reason = reason
        rec.batch_cap = batch_cap
        gave_up = rec.attempts >= self.config.max_attempts
        self._candidates.add(topic)
        if gave_up:
            _move(rec, _T.GAVE_UP)
        else:
            _move(rec, _T.REJECTED)
            rec.retry_at = now + self.config.retry_delay_after(rec.attempts)
        return [SubscriptionFailed(self.name, topic, reason, gave_up)]

    def _unsubscribed(self, topics: Iterable[str], reason: str) -> list[SubscriptionEvent]:
        # A failed unsubscribe is dropped too: at worst an unwanted topic keeps pushing data.
        events: list[SubscriptionEvent] = []
        for topic in topics:
            _move(self._topics[topic], _T.UNSUBSCRIBED)
            self._candidates.add(topic)
            self._forget_if_unused(topic)
            events.append(Unsubscribed(self.name, topic, reason))
        return events

    # --- time and reconnects ------------------------------------------------------------------

    def tick(self, now: float) -> list[SubscriptionEvent]:
        """Treats requests unanswered for `ack_timeout_s` as failed (unnamed failures)."""
        timeout_s = self.config.ack_timeout_s
        overdue = [r for r in self._requests.values() if now >= r.sent_at + timeout_s]
        events: list[SubscriptionEvent] = []
        for request in overdue:
            del self._requests[request.req_id]
            reason = f"no reply within {timeout_s:g} s"
            if request.op == _UNSUBSCRIBE:
                events += self._unsubscribed(request.topics, reason)
            else:
                events += self._subscribe_failed(request, reason, now)
        return events

    def on_disconnect(self) -> None:
        """The socket is gone: every desired topic (failed ones included) is restored later."""
        self._requests.clear()
        for topic in list(self._topics):
            rec = self._topics[topic]
            _move(rec, _T.DISCONNECTED)
            rec.attempts, rec.retry_at = 0, 0.0
            rec.batch_cap = self.config.max_topics_per_frame
            self._forget_if_unused(topic)
        self._candidates = set(self._topics)

    # --- helpers ------------------------------------------------------------------------------

    def _in(self, state: TopicState) -> frozenset[str]:
        return frozenset(t for t, rec in self._topics.items() if rec.state is state)

    def _waiting(self) -> Iterator[_Topic]:
        """Desired IDLE topics (all of them are candidates)."""
        for topic in self._candidates:
            rec = self._topics.get(topic)
            if rec is not None and rec.state is TopicState.IDLE and topic in self._desired:
                yield rec

    def _forget_if_unused(self, topic: str) -> None:
        rec = self._topics.get(topic)
        if rec is None or topic in self._desired:
            return
        if rec.state in (TopicState.IDLE, TopicState.FAILED):
            del self._topics[topic]


def _move(rec: _Topic, trigger: TopicTrigger) -> None:
    rec.state = next_state(TOPIC_TRANSITIONS, rec.state, trigger)


def private_subscriptions(
    name: str = "private", config: SubscriptionConfig | None = None
) -> SubscriptionSet:
    """The private socket's set: just the all-in-one `position` topic."""
    subscriptions = SubscriptionSet(name, config)
    subscriptions.add(PRIVATE_TOPIC)
    return subscriptions


def _named_topic(ret_msg: str) -> str | None:
    """`error:handler not found,topic:X` → X (Bybit names the offending topic last)."""
    _, found, topic = ret_msg.partition("topic:")
    return (topic.strip() or None) if found else None


def _must_split(a: str, b: str) -> bool:
    """All-in-one (`position`) and categorised (`position.linear`) topics can't share a frame."""
    return a.partition(".")[0] == b.partition(".")[0] and ("." in a) != ("." in b)
