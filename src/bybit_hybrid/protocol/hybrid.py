"""The hybrid stream's whole sans-I/O core: sockets, subscriptions, marks, book and REST needs.

Theory of operation
===================

`HybridCore` composes the pieces of `protocol/` into the product. It owns one private
`ConnectionSession` (topic `position`) and one or more public sessions (topics
`tickers.{SYMBOL}`, spread by `PublicShards` under Bybit's 21,000-character limit), a
`MarkCache` and a `PositionBook`. It reads no clock and touches no socket; its shell
(`transport/runner.py`) drives it:

    sockets()                       names of the sockets that should exist now
    start_connect / on_open /       one socket's lifecycle, as in `ConnectionSession`
    on_frame / on_close
    tick(now), next_deadline()      timers (pings, pong timeouts, retries)
    take_outbox(name), close_requested(name), reconnect_at(name), is_retired(name)
    take_rest_requests()            REST calls the core wants (positions, tickers)
    on_positions / on_tickers /     their answers (or failures)
    on_rest_failed
    take_events()                   everything that happened, in order

Rules:

- A ticker is subscribed exactly while some position in its symbol is open. Demand is
  reconciled as a net difference after each input, so a flip (close + open of the same
  symbol in one push) causes no unsubscribe/subscribe churn.
- The private stream sends no snapshot (BYBIT_V5.md §6.1): the book is bootstrapped from REST
  at start and reconciled again each time the private `position` subscription is confirmed,
  i.e. after every reconnect, so opens and closes missed during an outage are emitted then.
- A key missing from a `position/list` answer is not closed on that answer alone: the book
  asks for a confirmation, which the core sends as `FetchPositions(reason="confirm",
  symbol=...)` (one complete listing when many symbols are missed), see `protocol.positions`.
- A new position without a known mark gets its mark seeded from REST tickers, so it has a
  price before its first ticker frame.
- A frame that fails to decode is counted and reported as `BadFrame`; the socket stays up.
- `HybridConfig.stream_symbol`, when set, limits the streams to the symbols it accepts (a
  cutover share): other symbols get no ticker subscription and their private pushes are
  ignored, so REST polling (`on_positions(reason="poll")`, `on_tickers`) alone drives them.
- `ticker_heard_at(symbol)`, `mark_frame_at(symbol)` and `last_frame_at` let a failover
  shell judge the sockets' freshness: a ticker is alive while its frames (or its socket's
  pongs) arrive, whether or not they carry a mark; a mark that stopped moving is checked
  against REST (`protocol.failover`).
"""

from __future__ import annotations

import math
import random
from decimal import Decimal
from typing import Final

from bybit_hybrid.protocol.connects import ConnectBudget
from bybit_hybrid.protocol.core_seam import ExternalFeedSeam
from bybit_hybrid.protocol.core_status import core_status
from bybit_hybrid.protocol.core_types import (
    POSITION_TOPIC,
    PRIVATE,
    TICKER_PREFIX,
    BadFrame,
    CoreEvent,
    CoreStats,
    FetchPositions,
    FetchTickers,
    HybridConfig,
    Reconciled,
    RestFailed,
    RestRequest,
    ticker_topic,
    unseeded,
)
from bybit_hybrid.protocol.domain import PositionSnapshot, Socket, Source, TickerUpdate
from bybit_hybrid.protocol.events import PositionEvent, PositionOpened
from bybit_hybrid.protocol.marks import MarkCache
from bybit_hybrid.protocol.positions import PositionBook, confirmation_requests
from bybit_hybrid.protocol.rest_needs import RestNeeds
from bybit_hybrid.protocol.session import ConnectionSession, SessionEvent, SessionState
from bybit_hybrid.protocol.shards import (
    AssignTopic,
    CloseConnection,
    OpenConnection,
    PublicShards,
    ShardAction,
    UnassignTopic,
)
from bybit_hybrid.protocol.subscriptions import (
    SubscriptionConfirmed,
    SubscriptionSet,
    Unsubscribed,
    private_subscriptions,
)
from bybit_hybrid.protocol.ticker_demand import demand_change
from bybit_hybrid.wire.convert import position_from_ws
from bybit_hybrid.wire.decode import OtherTopic, PositionMessage, TickerMessage, decode_ws
from bybit_hybrid.wire.errors import WireDecodeError
from bybit_hybrid.wire.signing import Credentials

_CONNECTED: Final = (SessionState.SUBSCRIBING, SessionState.LIVE, SessionState.STALE)
# The core's vocabulary lives in `core_types`; importers keep importing it from here.
__all__ = [
    "POSITION_TOPIC",
    "PRIVATE",
    "TICKER_PREFIX",
    "BadFrame",
    "CoreEvent",
    "CoreStats",
    "FetchPositions",
    "FetchTickers",
    "HybridConfig",
    "HybridCore",
    "Reconciled",
    "RestFailed",
    "RestRequest",
    "ticker_topic",
]


class HybridCore(ExternalFeedSeam):
    """See the module docstring."""

    def __init__(
        self,
        credentials: Credentials,
        config: HybridConfig | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config or HybridConfig()
        self._rng = rng or random.Random()
        self.marks = MarkCache()
        self.book = PositionBook()
        self.stats = CoreStats()
        self._shards = PublicShards(max_args_chars=self.config.max_args_chars)
        self._sessions: dict[str, ConnectionSession] = {}
        self._retiring: set[str] = set()
        self._opened_once: set[str] = set()
        # Events not yet taken, in order (`take_events` hands them over): read, never change.
        self.pending_events: list[CoreEvent] = []
        self._ticker_refs: dict[str, int] = {}
        self.rest = RestNeeds(self.config.rest_backoff, self._rng)
        self.connects = ConnectBudget(self.config.connect_budget)
        self._connect_failed = False  # the last attempt failed: an outage until one opens
        self._schedule_changed = False
        self.last_frame_at: float | None = None
        # When each socket last received a frame of any kind (pongs included).
        self._rx_at: dict[str, float] = {}
        self.own_tickers = True  # see ExternalFeedSeam
        self._add_session(
            PRIVATE, private_subscriptions(PRIVATE, self.config.subscriptions), credentials
        )
        self._add_public(self._shards.primary)
        self.rest.want(FetchPositions(self.rest.next_id(), "bootstrap"))

    # --- sockets --------------------------------------------------------------------------

    def sockets(self) -> list[str]:
        return list(self._sessions)

    def kind(self, name: str) -> Socket:
        return Socket.PRIVATE if name == PRIVATE else Socket.PUBLIC

    def session(self, name: str) -> ConnectionSession:
        return self._sessions[name]

    def reconnect_at(self, name: str) -> float | None:
        """When the shell may dial `name`: its backoff, then the shared budget (None: now)."""
        at = self._sessions[name].reconnect_at
        allowed = self.connects.next_allowed_at(outage=self._in_outage())
        if allowed == -math.inf:
            return at
        return allowed if at is None else max(at, allowed)

    def take_schedule_changed(self) -> bool:
        """True once after reconnect times moved earlier: a shell waiting on them re-reads."""
        changed, self._schedule_changed = self._schedule_changed, False
        return changed

    def _in_outage(self) -> bool:
        return self._connect_failed and not any(
            s.state in _CONNECTED for s in self._sessions.values()
        )

    def is_retired(self, name: str) -> bool:
        """True once a retiring public shard has closed: the shell drops it for good."""
        return name not in self._sessions

    def take_outbox(self, name: str) -> list[str]:
        session = self._sessions.get(name)
        return session.take_outbox() if session is not None else []

    def close_requested(self, name: str) -> str | None:
        session = self._sessions.get(name)
        return session.close_requested if session is not None else None

    def start_connect(self, name: str, now: float) -> None:
        self.connects.record(now)
        self._collect(self._sessions[name].start_connect(now))

    def on_open(self, name: str, now: float) -> None:
        if name in self._opened_once:
            self.stats.reconnections += 1
        self._opened_once.add(name)
        self._collect(self._sessions[name].on_open(now))
        if self._connect_failed:
            # The exchange accepts connections again: nobody else waits out a long backoff.
            self._connect_failed = False
            for other in self._sessions.values():
                self._schedule_changed |= other.reconnect_now(now)

    def on_close(self, name: str, now: float, reason: str) -> None:
        session = self._sessions.get(name)
        if session is None or session.state is SessionState.DISCONNECTED:
            return
        if session.state is SessionState.CONNECTING:
            self._connect_failed = True  # refused, timed out: the exchange may be down
        self._collect(session.on_close(now, reason))
        if name in self._retiring:
            self._retiring.discard(name)
            del self._sessions[name]

    def on_frame(self, name: str, payload: bytes | str, now: float) -> bool:
        """Feeds one received frame. Returns False when the frame can only have produced
        events (a ticker on a LIVE socket, the steady state): then there is nothing to send,
        request or close, and no deadline moved earlier, so a runner need only take events."""
        session = self._sessions.get(name)
        if session is None:
            return False
        self.last_frame_at = self._rx_at[name] = now
        try:
            message = decode_ws(payload)
            events = session.on_message(message, now)
            if events:
                self._collect(events)
            if message.__class__ is TickerMessage:
                # The hottest path of the product, inline: straight from the wire message.
                self.stats.ticker_updates += 1
                mark = self.marks.apply_frame(message, now)  # raises on a bad price
                if mark is not None:
                    moved = self.book.apply_mark(
                        message.data.symbol, mark, ts_ms=message.ts_ms, cs=message.cs, now=now
                    )
                    if moved:  # revaluations only: no open to seed a mark for
                        self.stats.combined_events += len(moved)
                        self.pending_events.extend(moved)
                # A ticker opens and closes nothing: demand and routing cannot have changed
                # (issue 19 F8: a cutover used to recount the whole book here, per frame).
                return bool(events)
            elif isinstance(message, PositionMessage):
                self._on_positions(name, message, now)
            elif isinstance(message, OtherTopic):
                self.stats.ignored_frames += 1
        except WireDecodeError as exc:
            self._bad_frame(name, str(exc))
        self._sync_ticker_demand(now)
        return True

    def tick(self, now: float) -> None:
        for session in list(self._sessions.values()):
            self._collect(session.tick(now))
        self.rest.tick(now)

    def next_deadline(self) -> float | None:
        times = [s.next_deadline() for s in self._sessions.values()]
        times.extend(self.rest.retry_times())
        return min((t for t in times if t is not None), default=None)

    # --- REST -----------------------------------------------------------------------------

    def take_rest_requests(self) -> list[RestRequest]:
        return self.rest.take()

    @property
    def _rest_queue(self) -> list[RestRequest]:
        return self.rest.queue

    def on_positions(
        self,
        request_id: int,
        snapshots: list[PositionSnapshot],
        *,
        requested_at: float,
        response_ts_ms: int | None,
        now: float,
        reason: str | None = None,
    ) -> None:
        """A complete `position/list` answer; `reason` names an answer nobody here requested
        (a failover poll), which is merged the same way."""
        request = self.rest.answered(request_id, reset_backoff=True)
        if reason is None:
            reason = request.reason if isinstance(request, FetchPositions) else "unrequested"
        at, ts_ms = requested_at, response_ts_ms
        if isinstance(request, FetchPositions) and request.symbol is not None:
            # One symbol's rows confirm (or withdraw) what a listing missed; not a reconcile.
            confirmed = self.book.confirm(
                request.symbol, snapshots, now, requested_at=at, response_ts_ms=ts_ms
            )
            self._emit_positions(confirmed)
        else:
            events = self.book.reconcile(
                snapshots, now, complete=True, requested_at=at, response_ts_ms=ts_ms
            )
            self._emit_positions(events)
            opened = [s for s in snapshots if s.is_open]
            self.pending_events.append(Reconciled(reason, len(opened), len(events)))
        for symbol in confirmation_requests(self.book.take_confirmations()):
            self.rest.want(FetchPositions(self.rest.next_id(), "confirm", symbol))
        self._sync_ticker_demand(now)

    def on_tickers(self, request_id: int, updates: list[TickerUpdate], now: float) -> None:
        self.rest.answered(request_id)
        wanted = self.book.open_symbols()
        for update in updates:
            if update.symbol not in wanted or update.mark_price is None:
                continue
            mark = self.marks.seed(update.symbol, update.mark_price, update.ts_ms, now)
            if mark is not None:
                self._apply_mark(
                    update.symbol, mark, update.ts_ms, None, now=now, source=Source.REST
                )

    def on_rest_failed(
        self, request_id: int, error: str, now: float, *, permanent: bool = False
    ) -> None:
        retry = self.rest.failed(request_id, now)
        if retry is None:
            return
        self.stats.rest_failures += 1
        request, delay_s = retry
        self.pending_events.append(RestFailed(request, error, delay_s, permanent))

    # --- outputs ----------------------------------------------------------------------------

    def take_events(self) -> list[CoreEvent]:
        events, self.pending_events = self.pending_events, []
        return events

    def mark_frame_at(self, symbol: str) -> float | None:
        """When the symbol's last ticker frame carrying a mark price arrived (REST seeds and
        mark-less deltas do not count)."""
        return self.marks.mark_frame_at(symbol)

    def rx_at(self, name: str) -> float | None:
        """When socket `name` last received a frame of any kind (a pong included)."""
        return self._rx_at.get(name)

    def ticker_heard_at(self, symbol: str) -> float | None:
        """The symbol's ticker's last sign of life (issue 19 F4): its last frame of any kind, or
        the last frame (a pong included) of the LIVE public socket where its topic is
        confirmed, since a quiet symbol may send nothing at all. REST seeds never count."""
        heard = self.marks.frame_at(symbol)
        topic = ticker_topic(symbol)
        shard = self._shards.connection_of(topic)
        session = self._sessions.get(shard) if shard is not None else None
        if (
            session is not None
            and session.state is SessionState.LIVE
            and topic in session.subscriptions.confirmed
        ):
            rx_at = self._rx_at.get(shard or "")
            if rx_at is not None and (heard is None or rx_at > heard):
                heard = rx_at
        return heard

    def streams(self, symbol: str) -> bool:
        """True if the sockets serve this symbol (always, unless a cutover excludes it)."""
        accept = self.config.stream_symbol
        return accept is None or accept(symbol)

    def is_connected(self, kind: Socket) -> bool:
        return any(s.state in _CONNECTED for n, s in self._sessions.items() if self.kind(n) is kind)

    def subscribed_tickers(self) -> int:
        return sum(
            1
            for name, s in self._sessions.items()
            if name != PRIVATE
            for topic in s.subscriptions.confirmed
            if topic.startswith(TICKER_PREFIX)
        )

    def status(self, now: float) -> dict[str, object]:
        """A JSON-ready picture of the core for `get_status()` (`protocol.core_status`)."""
        return core_status(
            self._sessions,
            self.book.views(),
            self.marks,
            rest_retries_pending=self.rest.retries_pending(),
            now=now,
        )

    # --- internals --------------------------------------------------------------------------

    def _add_session(
        self, name: str, subscriptions: SubscriptionSet, credentials: Credentials | None
    ) -> None:
        self._sessions[name] = ConnectionSession(
            name,
            private=credentials is not None,
            credentials=credentials,
            config=self.config.session,
            subscriptions=subscriptions,
            rng=self._rng,
        )

    def _add_public(self, name: str) -> None:
        self._add_session(name, SubscriptionSet(name, self.config.subscriptions), None)

    def _collect(self, events: list[SessionEvent]) -> None:
        for event in events:
            if isinstance(event, SubscriptionConfirmed):
                self.stats.subscriptions += 1
                if event.connection == PRIVATE and event.topic == POSITION_TOPIC:
                    # Pushes flow from here on: a snapshot now closes the outage's gap.
                    self.rest.want(FetchPositions(self.rest.next_id(), "reconnect"))
            elif isinstance(event, Unsubscribed):
                self.stats.unsubscriptions += 1
            self.pending_events.append(event)

    def _apply_mark(
        self, symbol: str, mark: Decimal, ts_ms: int, cs: int | None, *, now: float, source: Source
    ) -> None:
        events = self.book.apply_mark(symbol, mark, ts_ms=ts_ms, cs=cs, now=now, source=source)
        self._emit_positions(events)

    def _on_positions(self, name: str, message: PositionMessage, now: float) -> None:
        for row in message.data:
            self.stats.position_updates += 1
            if not self.streams(row.symbol):
                self.stats.unstreamed_rows += 1  # its cutover share is served by REST
                continue
            try:
                snapshot = position_from_ws(row, message.creation_time_ms)
            except WireDecodeError as exc:
                # One bad row must not cost the others in the same push.
                self._bad_frame(name, f"position {row.symbol}/{row.positionIdx}: {exc}")
                continue
            self._emit_positions(self.book.apply_position(snapshot, now))

    def _emit_positions(self, events: list[PositionEvent]) -> None:
        self.stats.combined_events += len(events)
        self.pending_events.extend(events)
        unpriced = [
            event.key.symbol
            for event in events
            if isinstance(event, PositionOpened) and self.book.mark(event.key.symbol) is None
        ]
        if unpriced:
            self._want_seed(unpriced)

    def _want_seed(self, symbols: list[str]) -> None:
        """One seed request for every symbol not already being fetched (a bootstrap opening
        1,000 positions asks once, not 1,000 times)."""
        missing = unseeded(symbols, self.rest.pending())
        if missing:
            self.rest.want(FetchTickers(self.rest.next_id(), missing))

    def _sync_ticker_demand(self, now: float) -> None:
        """Acquire/release ticker topics by the net change in open positions per symbol.

        Only symbols where a key opened or closed can have changed (`take_touched_symbols`):
        O(changes), and nothing at all for the ticker frames that make up almost all inputs.
        A cutover routes each of those symbols when it opens or closes (issue 19 F8): a
        REST-served symbol is never subscribed, and its mark is dropped when it goes flat,
        since no unsubscribe will drop it.
        """
        touched = self.book.take_touched_symbols()
        if not touched or not self.own_tickers:
            return
        actions: list[ShardAction] = []
        for symbol in touched:
            count = self.book.refcount(symbol)
            if not self.streams(symbol):
                if not count:
                    self.marks.drop(symbol)
                    self.book.forget_mark(symbol)
                continue
            actions += demand_change(self._shards, self._ticker_refs, symbol, count)
        for action in actions:
            self._apply_shard_action(action, now)

    def _apply_shard_action(self, action: ShardAction, now: float) -> None:
        if isinstance(action, OpenConnection):
            self._add_public(action.name)
        elif isinstance(action, AssignTopic):
            self._collect(self._sessions[action.connection].add_topic(action.topic, now))
        elif isinstance(action, UnassignTopic):
            self._collect(self._sessions[action.connection].remove_topic(action.topic, now))
            symbol = action.topic.removeprefix(TICKER_PREFIX)
            self.marks.drop(symbol)
            self.book.forget_mark(symbol)
        elif isinstance(action, CloseConnection):
            session = self._sessions[action.name]
            if session.state is SessionState.DISCONNECTED:
                del self._sessions[action.name]
            else:
                self._retiring.add(action.name)
                self._collect(session.close("shard empty", reconnect=False))

    def _bad_frame(self, name: str, error: str) -> None:
        self.stats.bad_frames[name] += 1
        self.pending_events.append(BadFrame(name, error))
