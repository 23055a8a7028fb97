"""One Bybit WebSocket's lifecycle as a sans-I/O state machine: connect, auth, subscribe, heartbeat.

Theory of operation
===================

A `ConnectionSession` owns no socket and reads no clock. Its shell (transport/) owns the socket
and feeds it inputs, each stamped with `now` (epoch seconds from the wall clock):

    start_connect(now)        the shell is about to dial
    on_open(now)              the socket is open
    on_message(msg, now)      a frame arrived, decoded with `wire.decode.decode_ws`
    on_close(now, reason)     the socket is gone (whoever closed it, or the dial failed)
    tick(now)                 a deadline passed; `next_deadline()` says when to call it

and carries out its outputs:

    take_outbox()             frames to send, in order (auth, ping, subscribe, unsubscribe)
    close_requested           a reason once the core wants the socket closed; the shell must
                              close it and then call `on_close` (a flag alone closes nothing)
    reconnect_at              after a close: when to `start_connect` again (backoff);
                              None after `close(reason, reconnect=False)`
    next_deadline()           when to call `tick`; None while DISCONNECTED or CLOSING

Each input returns the events it caused (`SessionEvent`); the shell passes them on.

States and transitions (`TRANSITIONS` is the whole table; anything else raises
`IllegalTransition`):

    DISCONNECTED --connect--> CONNECTING
    CONNECTING --open_private--> AUTHENTICATING --auth_accepted--> SUBSCRIBING
    CONNECTING --open_public--> SUBSCRIBING
    SUBSCRIBING --subscriptions_settled--> LIVE --silence--> STALE --message--> LIVE
    AUTHENTICATING --auth_rejected--> CLOSING
    any open state --close_requested--> CLOSING
    any state but DISCONNECTED --closed--> DISCONNECTED

Rules that come from Bybit's behaviour (BYBIT_V5.md):

- Private sockets send `auth` on open and send no subscribe until the auth ack (§8.1–2, §8.9:
  subscribing early gets `Request not authorized`). `expires` is now + `auth_expires_s`, in ms
  (§2.1, §8.4). A rejected auth (`Params Error`) closes the socket; the reconnect waits for the
  longer of the usual backoff and `auth_retry_backoff` (1–2 s growing to 30–60 s), and is not
  released early by another socket's success, so a rejected key never becomes a tight loop.
- SUBSCRIBING lasts until every initial subscribe is answered (acked, failed or timed out); a
  bad topic is retried by the `SubscriptionSet` later and never holds the socket back.
- A JSON ping goes out every `ping_interval_s` (20 s, §3.3). Any frame counts as liveness: the
  two pong shapes (already unified by `wire.Pong`), replies and data alike. No frame within
  `pong_timeout_s` of a ping means the socket is dead: close requested. A public socket with
  `idle_ping_s` set also pings once it has heard nothing for that long (its pong due within
  the same time): a quiet shard is heard from often, a busy one sends no extra ping.
- The private socket carries only position pushes, so it is quiet most of the time and a
  silent one (TCP up, nothing arriving) looks like a quiet one until a pong is overdue. It
  runs a shorter heartbeat (`SessionConfig.for_private`: a ping every 3 s, the pong due within
  2 s), so it is declared dead at most 5 s after its last frame (issue 19 F2). Bybit's 20 s is
  the longest interval that keeps a socket open; pinging more often is allowed (bapi pings
  every 10 s with a 1 s pong timeout).
- LIVE turns STALE after `stale_after_s` without any frame, and back on the next frame. STALE
  is a warning: the socket is not closed for it (the pong timeout does that).
- The reconnect backoff resets once the socket has been LIVE for `healthy_reset_s`, so a socket
  that flaps right after subscribing keeps backing off.
- CLOSING is the wait between asking for a close and the shell's `on_close`; late frames
  arriving then are ignored.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Final

from bybit_hybrid.protocol.backoff import Backoff
from bybit_hybrid.protocol.errors import next_state

# Re-exported: SessionConfig lived here, and every shell imports it from here.
from bybit_hybrid.protocol.session_config import SessionConfig as SessionConfig  # noqa: PLC0414
from bybit_hybrid.protocol.subscriptions import (
    SubscriptionConfirmed,
    SubscriptionFailed,
    SubscriptionSet,
    Unsubscribed,
)
from bybit_hybrid.wire.decode import OpReply, Pong, WsMessage
from bybit_hybrid.wire.frames import auth_frame, ping_frame
from bybit_hybrid.wire.signing import Credentials


class SessionState(Enum):
    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    AUTHENTICATING = "authenticating"
    SUBSCRIBING = "subscribing"
    LIVE = "live"
    STALE = "stale"
    CLOSING = "closing"


class Trigger(Enum):
    """What moves a session between states (inputs, or conditions found while handling them)."""

    CONNECT = "connect"
    OPEN_PRIVATE = "open_private"
    OPEN_PUBLIC = "open_public"
    AUTH_ACCEPTED = "auth_accepted"
    AUTH_REJECTED = "auth_rejected"
    SUBSCRIPTIONS_SETTLED = "subscriptions_settled"
    MESSAGE = "message"
    SILENCE = "silence"
    CLOSE_REQUESTED = "close_requested"
    CLOSED = "closed"


_S = SessionState
_T = Trigger
# Control replies; every other message is data, which is all a LIVE socket needs to note.
_REPLIES: Final = frozenset({Pong, OpReply})
_OPEN: Final = (_S.AUTHENTICATING, _S.SUBSCRIBING, _S.LIVE, _S.STALE)
_SENDABLE: Final = (_S.SUBSCRIBING, _S.LIVE, _S.STALE)

TRANSITIONS: Final[Mapping[tuple[SessionState, Trigger], SessionState]] = {
    (_S.DISCONNECTED, _T.CONNECT): _S.CONNECTING,
    (_S.CONNECTING, _T.OPEN_PRIVATE): _S.AUTHENTICATING,
    (_S.CONNECTING, _T.OPEN_PUBLIC): _S.SUBSCRIBING,
    (_S.AUTHENTICATING, _T.AUTH_ACCEPTED): _S.SUBSCRIBING,
    (_S.AUTHENTICATING, _T.AUTH_REJECTED): _S.CLOSING,
    (_S.SUBSCRIBING, _T.SUBSCRIPTIONS_SETTLED): _S.LIVE,
    (_S.LIVE, _T.SILENCE): _S.STALE,
    # Frames keep every open state as it is, except that they end STALE.
    (_S.AUTHENTICATING, _T.MESSAGE): _S.AUTHENTICATING,
    (_S.SUBSCRIBING, _T.MESSAGE): _S.SUBSCRIBING,
    (_S.LIVE, _T.MESSAGE): _S.LIVE,
    (_S.STALE, _T.MESSAGE): _S.LIVE,
    (_S.CLOSING, _T.MESSAGE): _S.CLOSING,
    **{(state, _T.CLOSE_REQUESTED): _S.CLOSING for state in (_S.CONNECTING, *_OPEN, _S.CLOSING)},
    **{(state, _T.CLOSED): _S.DISCONNECTED for state in _S if state is not _S.DISCONNECTED},
}


def transition(state: SessionState, trigger: Trigger) -> SessionState:
    """The table lookup; raises `IllegalTransition` for a pair the table lacks."""
    return next_state(TRANSITIONS, state, trigger)


@dataclass(frozen=True, slots=True)
class StateChanged:
    connection: str
    old: SessionState
    new: SessionState
    reason: str


@dataclass(frozen=True, slots=True)
class AuthFailed:
    connection: str
    ret_msg: str


@dataclass(frozen=True, slots=True)
class HeartbeatRtt:
    """Round trip of one of our pings, measured on the shell's wall clock."""

    connection: str
    rtt_s: float


@dataclass(frozen=True, slots=True)
class SocketDead:
    """The core gave up on the socket (no pong, no open, no auth reply) and asked for a close."""

    connection: str
    reason: str


SessionEvent = (
    StateChanged
    | AuthFailed
    | HeartbeatRtt
    | SocketDead
    | SubscriptionConfirmed
    | SubscriptionFailed
    | Unsubscribed
)


class ConnectionSession:
    """One socket's state machine; see the module docstring for how a shell drives it."""

    def __init__(
        self,
        name: str,
        *,
        private: bool,
        credentials: Credentials | None,
        config: SessionConfig,
        subscriptions: SubscriptionSet,
        rng: random.Random | None = None,
    ) -> None:
        if private and credentials is None:
            raise ValueError(f"private connection {name!r} needs credentials")
        self.name = name
        self.private = private
        self.config = config.for_private() if private else config
        self.subscriptions = subscriptions
        self.backoff = Backoff(self.config.backoff, rng)
        self.auth_backoff = Backoff(self.config.auth_retry_backoff, rng)
        self._auth_rejected = False  # the last close followed a rejected auth
        self._credentials = credentials
        self._state = SessionState.DISCONNECTED
        self._outbox: list[str] = []
        self._close_requested: str | None = None
        self._reconnect_wanted = True
        self._reconnect_at: float | None = None
        self._serial = 0
        self._reset_timers()

    def _reset_timers(self) -> None:
        self._deadline: float | None = None  # connect or auth reply, whichever applies
        self._next_ping_at: float | None = None
        self._pong_due_at: float | None = None  # cleared by any frame
        self._ping_in_flight: tuple[str, float] | None = None  # (req_id, sent_at) for the RTT
        self._last_rx_at: float | None = None
        # Start of the current LIVE stretch; cleared once it has reset the backoff.
        self._live_since: float | None = None

    # --- outputs ------------------------------------------------------------------------------

    @property
    def state(self) -> SessionState:
        return self._state

    @property
    def close_requested(self) -> str | None:
        return self._close_requested

    @property
    def reconnect_at(self) -> float | None:
        return self._reconnect_at

    def take_outbox(self) -> list[str]:
        frames, self._outbox = self._outbox, []
        return frames

    def next_deadline(self) -> float | None:
        """The earliest time `tick` has work; None while DISCONNECTED (see `reconnect_at`)."""
        state = self._state
        if state in (_S.DISCONNECTED, _S.CLOSING):
            return None
        times = [self._deadline, self._next_ping_at, self._pong_due_at, self._idle_ping_at()]
        if state is _S.LIVE and self._last_rx_at is not None:
            times.append(self._last_rx_at + self.config.stale_after_s)
        if state is _S.LIVE and self._live_since is not None:
            times.append(self._live_since + self.config.healthy_reset_s)
        if state in _SENDABLE:
            times.append(self.subscriptions.next_deadline())
        return min((t for t in times if t is not None), default=None)

    # --- inputs -------------------------------------------------------------------------------

    def start_connect(self, now: float) -> list[SessionEvent]:
        """The shell is dialling now; after a close it must have waited until `reconnect_at`.

        Not enforced with a raise: the shell sleeps on a monotonic clock while `now` is wall
        time, and an exception here would kill the shell's reconnect loop for good.
        """
        events = self._move(_T.CONNECT, "connect started")
        self._reconnect_at = None
        self._close_requested = None
        self._reconnect_wanted = True
        self._deadline = now + self.config.connect_timeout_s
        return events

    def on_open(self, now: float) -> list[SessionEvent]:
        trigger = _T.OPEN_PRIVATE if self.private else _T.OPEN_PUBLIC
        events = self._move(trigger, "socket open")
        self._last_rx_at = now
        self._next_ping_at = now + self.config.ping_interval_s
        if self.private:
            self._send_auth(now)
            return events
        self._deadline = None
        return events + self._flush(now)

    def on_message(self, message: WsMessage, now: float) -> list[SessionEvent]:
        if self._state is _S.LIVE and message.__class__ not in _REPLIES:
            # The steady state, once per data frame: LIVE stays LIVE and nothing else applies.
            self._last_rx_at = now
            self._pong_due_at = None
            return []
        if self._state is _S.CLOSING:
            return []  # frames already in flight when we asked for the close
        events = self._move(_T.MESSAGE, "data resumed")
        if events:  # STALE -> LIVE: a new healthy stretch starts
            self._live_since = now
        self._last_rx_at = now
        self._pong_due_at = None
        if isinstance(message, Pong):
            events += self._on_pong(message, now)
        elif isinstance(message, OpReply):
            events += self._on_reply(message, now)
        return events

    def on_close(self, now: float, reason: str) -> list[SessionEvent]:
        was_healthy = self._healthy_for(now) >= self.config.healthy_reset_s
        events = self._move(_T.CLOSED, reason)
        if was_healthy:
            self.backoff.reset()
        self.subscriptions.on_disconnect()
        self._outbox.clear()  # never sent: they belonged to the dead socket
        self._close_requested = None
        self._reset_timers()
        if self._reconnect_wanted:
            delay_s = self.backoff.next_delay()
            if self._auth_rejected:
                delay_s = max(delay_s, self.auth_backoff.next_delay())
            self._reconnect_at = now + delay_s
        return events

    def tick(self, now: float) -> list[SessionEvent]:
        state = self._state
        if state is _S.CONNECTING:
            return self._check_deadline(now, "no open")
        if state not in _OPEN:
            return []
        if self._pong_due_at is not None and now >= self._pong_due_at:
            reason = f"no pong or data within {self.config.pong_timeout_s:g} s of ping"
            return self._declare_dead(reason)
        if state is _S.AUTHENTICATING and (dead := self._check_deadline(now, "no auth reply")):
            return dead
        events: list[SessionEvent] = []
        if state in _SENDABLE:
            events += self.subscriptions.tick(now)
        self._maybe_ping(now)
        events += self._check_silence(now)
        self._maybe_reset_backoff(now)
        return events + self._flush(now)

    def reconnect_now(self, now: float) -> bool:
        """A waiting reconnect may go at once (another socket just got through): True if the
        wait was shortened. The backoff starts over: the outage that grew it is over."""
        at = self._reconnect_at
        if self._state is not _S.DISCONNECTED or at is None or at <= now:
            return False
        if self._auth_rejected:
            return False  # another socket getting through says nothing about our key
        self._reconnect_at = now
        self.backoff.reset()
        return True

    def close(self, reason: str, *, reconnect: bool = True) -> list[SessionEvent]:
        """Asks the shell to close the socket (e.g. shutdown, or an empty extra shard)."""
        self._reconnect_wanted = reconnect
        if self._state is _S.DISCONNECTED:
            if not reconnect:
                self._reconnect_at = None
            return []
        return self._request_close(_T.CLOSE_REQUESTED, reason)

    def add_topic(self, topic: str, now: float) -> list[SessionEvent]:
        self.subscriptions.add(topic)
        return self._flush(now)

    def remove_topic(self, topic: str, now: float) -> list[SessionEvent]:
        self.subscriptions.discard(topic)
        return self._flush(now)

    # --- internals ----------------------------------------------------------------------------

    def _move(self, trigger: Trigger, reason: str) -> list[SessionEvent]:
        old = self._state
        new = transition(old, trigger)
        self._state = new
        if new is old:
            return []
        return [StateChanged(self.name, old, new, reason)]

    def _next_req_id(self, kind: str) -> str:
        self._serial += 1
        return f"{self.name}-{kind}-{self._serial}"

    def _send_auth(self, now: float) -> None:
        assert self._credentials is not None  # checked in __init__ for private sessions
        expires_ms = int((now + self.config.auth_expires_s) * 1000)
        self._outbox.append(auth_frame(self._credentials, expires_ms, self._next_req_id("auth")))
        self._deadline = now + self.config.auth_timeout_s

    def _on_pong(self, pong: Pong, now: float) -> list[SessionEvent]:
        if self._ping_in_flight is None:
            return []
        req_id, sent_at = self._ping_in_flight
        # An echoed req_id must be ours; Bybit's doc example echoes "" (decoded as None).
        if pong.req_id is not None and pong.req_id != req_id:
            return []
        self._ping_in_flight = None
        return [HeartbeatRtt(self.name, now - sent_at)]

    def _on_reply(self, reply: OpReply, now: float) -> list[SessionEvent]:
        if reply.op == "auth":
            return self._on_auth_reply(reply, now)
        if self._state not in _SENDABLE:
            return []
        return self.subscriptions.on_reply(reply, now) + self._flush(now)

    def _on_auth_reply(self, reply: OpReply, now: float) -> list[SessionEvent]:
        if self._state is not _S.AUTHENTICATING:
            return []  # a duplicate or foreign reply: auth is already settled
        if not reply.success:
            self._auth_rejected = True
            events: list[SessionEvent] = [AuthFailed(self.name, reply.ret_msg)]
            reason = f"auth rejected: {reply.ret_msg}"
            return events + self._request_close(_T.AUTH_REJECTED, reason)
        self._deadline = None
        self._auth_rejected = False
        self.auth_backoff.reset()
        return self._move(_T.AUTH_ACCEPTED, "auth accepted") + self._flush(now)

    def _flush(self, now: float) -> list[SessionEvent]:
        """Sends what the subscriptions need, and leaves SUBSCRIBING once all are answered."""
        if self._state not in _SENDABLE:
            return []
        self._outbox += self.subscriptions.take_frames(now)
        if self._state is _S.SUBSCRIBING and not self.subscriptions.has_requests_in_flight():
            events = self._move(_T.SUBSCRIPTIONS_SETTLED, "subscriptions answered")
            self._live_since = now
            return events
        return []

    def _maybe_ping(self, now: float) -> None:
        regular = self._next_ping_at is not None and now >= self._next_ping_at
        idle_at = self._idle_ping_at()
        if not regular and (idle_at is None or now < idle_at):
            return
        req_id = self._next_req_id("ping")
        self._outbox.append(ping_frame(req_id))
        self._ping_in_flight = (req_id, now)
        wait_s = self.config.pong_timeout_s
        if not regular and self.config.idle_ping_s is not None:
            wait_s = min(wait_s, self.config.idle_ping_s)
        # A regular ping never pushes back the deadline of an idle ping still unanswered.
        due = now + wait_s
        self._pong_due_at = due if self._pong_due_at is None else min(self._pong_due_at, due)
        # From now, not from the due time: after a long sleep, one ping, not a burst.
        self._next_ping_at = now + self.config.ping_interval_s

    def _idle_ping_at(self) -> float | None:
        """When a quiet public socket pings out of cadence (`SessionConfig.idle_ping_s`); None
        with no idle ping configured, on the private socket, or while a pong is awaited."""
        idle_s = self.config.idle_ping_s
        if idle_s is None or self.private or self._pong_due_at is not None:
            return None
        if self._state not in (_S.LIVE, _S.STALE) or self._last_rx_at is None:
            return None
        return self._last_rx_at + idle_s

    def _check_silence(self, now: float) -> list[SessionEvent]:
        if self._state is not _S.LIVE or self._last_rx_at is None:
            return []
        if now < self._last_rx_at + self.config.stale_after_s:
            return []
        self._live_since = None
        return self._move(_T.SILENCE, f"no frame for {self.config.stale_after_s:g} s")

    def _maybe_reset_backoff(self, now: float) -> None:
        if self._healthy_for(now) >= self.config.healthy_reset_s:
            self.backoff.reset()
            self._live_since = None  # once per healthy stretch is enough

    def _healthy_for(self, now: float) -> float:
        if self._state is not _S.LIVE or self._live_since is None:
            return 0.0
        return now - self._live_since

    def _check_deadline(self, now: float, what: str) -> list[SessionEvent]:
        if self._deadline is None or now < self._deadline:
            return []
        timeout_s = (
            self.config.connect_timeout_s
            if self._state is _S.CONNECTING
            else self.config.auth_timeout_s
        )
        return self._declare_dead(f"{what} within {timeout_s:g} s")

    def _declare_dead(self, reason: str) -> list[SessionEvent]:
        events: list[SessionEvent] = [SocketDead(self.name, reason)]
        return events + self._request_close(_T.CLOSE_REQUESTED, reason)

    def _request_close(self, trigger: Trigger, reason: str) -> list[SessionEvent]:
        events = self._move(trigger, reason)
        if self._close_requested is None:
            self._close_requested = reason
        self._reset_timers()  # nothing is due while the shell closes the socket
        return events
