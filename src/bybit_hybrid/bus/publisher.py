"""Publishes an account's position events (opened, changed, closed) to `bybit.positions.{account}`.

Events are queued in order and each is published with an ack before the next, retried until
the bus takes it, so an outage delays events but loses none (up to `max_backlog`; beyond it
the oldest are dropped and counted, and an error is logged). Before publishing anything the
publisher reads its subject back: a restarted worker's bootstrap re-announcing a position in
the state the bus holds is dropped, one in a new state goes out as `changed`. The message id
names the position's exchange state, so a publish retried after a lost ack is dropped by
JetStream's duplicate window.

A close that happened while the worker was down has no event in the new book (which starts
empty): at start the publisher reads its own subject back (`load`), and once the book is
bootstrapped (`close_missing`) publishes a `closed` for every key the bus still holds open
but the exchange no longer has (`source: rest`, size 0, the last known side and entry).
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Iterable
from typing import Any, Final

from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import DeliverPolicy
from nats.js.client import JetStreamContext

from bybit_hybrid.bus.payloads import PositionMessage, decode_position, encode
from bybit_hybrid.bus.subjects import check_account, position_msg_id, positions_subject
from bybit_hybrid.protocol.domain import PositionKey
from bybit_hybrid.protocol.events import (
    PositionChanged,
    PositionClosed,
    PositionOpened,
    to_contract,
)
from bybit_hybrid.protocol.hybrid import CoreEvent

log = logging.getLogger(__name__)

_LIFECYCLE: Final = (PositionOpened, PositionChanged, PositionClosed)
_RETRY_S: Final = 0.5


class PositionPublisher:
    """A core listener (`stream.add_listener(publisher.listener)`) plus a publishing task."""

    def __init__(self, account: str, max_backlog: int = 100_000) -> None:
        self.account = check_account(account)
        self.subject = positions_subject(account)
        self._queue: collections.deque[PositionMessage] = collections.deque()
        self._max_backlog = max_backlog
        self._wake = asyncio.Event()
        self._drained = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.stats = {
            "published": 0,
            "duplicates": 0,
            "dropped": 0,
            "retries": 0,
            "closes_restored": 0,
        }
        # What the bus holds open for this account, read back at start (None: not yet).
        self.restored: dict[tuple[str, int], dict[str, Any]] | None = None
        # Keys this run has published an event for: its own book is the truth for them.
        self._seen: set[tuple[str, int]] = set()
        # The last state on the bus per open key, kept as events are published.
        self._held: dict[tuple[str, int], dict[str, Any]] = {}

    def listener(self, event: CoreEvent) -> None:
        if not isinstance(event, _LIFECYCLE):
            return  # marks travel on bybit.marks.*; the replayable log holds the lifecycle
        view = event.view
        message = PositionMessage(self.account, event.kind, "bybit", to_contract(view))
        self._seen.add((view.key.symbol, view.key.idx))
        self._enqueue(message)

    def _enqueue(self, message: PositionMessage) -> None:
        if len(self._queue) >= self._max_backlog:
            self._queue.popleft()
            self.stats["dropped"] += 1
            log.error("bus: position backlog full (%d), oldest event dropped", self._max_backlog)
        self._queue.append(message)
        self._drained.clear()
        self._wake.set()

    async def load(self, js: JetStreamContext, idle_s: float = 0.5) -> None:
        """Reads this account's subject from the start: the positions the bus holds open."""
        sub = await js.subscribe(
            self.subject, ordered_consumer=True, deliver_policy=DeliverPolicy.ALL
        )
        held: dict[tuple[str, int], dict[str, Any]] = {}
        try:
            while True:
                try:
                    msg = await sub.next_msg(timeout=idle_s)
                except NatsTimeoutError:
                    break  # nothing stored, or a stall: what was read is what we know
                _hold(held, decode_position(msg.data))
                if msg.metadata.num_pending == 0:
                    break
        finally:
            await sub.unsubscribe()
        self.restored = dict(held)
        self._held = held

    def close_missing(self, open_keys: Iterable[PositionKey]) -> int:
        """Publishes a `closed` for each key the bus holds open and the book does not."""
        assert self.restored is not None
        wanted = {(key.symbol, key.idx) for key in open_keys}
        missed = [
            data
            for key, data in self.restored.items()
            if key not in wanted and key not in self._seen
        ]
        for data in missed:
            closed = {
                **data,
                "size": "0",
                "unrealized_pnl": "0",
                "status": "closed",
                "source": "rest",
                "cs": None,
            }
            key = (str(data["symbol"]), int(data["position_idx"]))
            self._enqueue(PositionMessage(self.account, "closed", "bybit", closed))
            log.info("bus: %s %s/%d closed while the worker was down", self.account, *key)
        self.stats["closes_restored"] += len(missed)
        self.restored = {}
        return len(missed)

    @property
    def backlog(self) -> int:
        return len(self._queue)

    def start(self, js: JetStreamContext) -> None:
        self._task = asyncio.create_task(self._run(js), name=f"bybit-bus-positions-{self.account}")

    async def stop(self, drain_timeout_s: float = 2.0) -> None:
        """Gives the backlog `drain_timeout_s` to reach the bus, then stops."""
        if self._task is None:
            return
        if self._queue:
            try:
                async with asyncio.timeout(drain_timeout_s):
                    await self._drained.wait()
            except TimeoutError:
                log.warning("bus: %d position events not published at stop", len(self._queue))
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self._task = None

    async def _run(self, js: JetStreamContext) -> None:
        # Nothing is published before the bus's own record is read: it decides what is new.
        while self.restored is None:
            try:
                await self.load(js)
            except (NatsError, TimeoutError) as exc:
                log.debug("bus: reading back %s failed, retrying: %s", self.subject, exc)
                await asyncio.sleep(_RETRY_S)
        while True:
            if not self._queue:
                self._drained.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            message = self._as_news(self._queue[0])
            if message is None:
                self._queue.popleft()
                self.stats["duplicates"] += 1
                continue
            try:
                await self._publish(js, message)
            except (NatsError, TimeoutError) as exc:
                self.stats["retries"] += 1
                log.debug("bus: publishing a position event failed, retrying: %s", exc)
                await asyncio.sleep(_RETRY_S)
                continue
            self._queue.popleft()
            _hold(self._held, message)

    def _as_news(self, message: PositionMessage) -> PositionMessage | None:
        """A restarted worker's bootstrap announces every position as `opened`: the same state
        the bus holds is no news (None); another state of a position the bus holds open is a
        `changed`. This holds beyond JetStream's duplicate window."""
        if message.event != "opened":
            return message
        held = self._held.get((str(message.data["symbol"]), int(message.data["position_idx"])))
        if held is None:
            return message
        if held.get("seq") == message.data.get("seq"):
            return None
        return PositionMessage(message.account, "changed", message.exchange, message.data)

    async def _publish(self, js: JetStreamContext, message: PositionMessage) -> None:
        data = message.data
        msg_id = position_msg_id(
            self.account, str(data["symbol"]), int(data["position_idx"]), message.event,
            data.get("seq"),
        )  # fmt: skip
        ack = await js.publish(
            self.subject, encode(message), timeout=2.0, headers={"Nats-Msg-Id": msg_id}
        )
        self.stats["duplicates" if ack.duplicate else "published"] += 1


def _hold(held: dict[tuple[str, int], dict[str, Any]], message: PositionMessage) -> None:
    key = (str(message.data["symbol"]), int(message.data["position_idx"]))
    if message.event == "closed":
        held.pop(key, None)
    else:
        held[key] = message.data
