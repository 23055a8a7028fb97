"""Publishes an account's position events (opened, changed, closed) to `bybit.positions.{account}`.

Events are queued in order and each is published with an ack before the next, retried until
the bus takes it, so an outage delays events but loses none (up to `max_backlog`; beyond it
the oldest are dropped and counted, and an error is logged). The message id names the
position's exchange state, so a restarted worker's bootstrap re-announcing the same positions
is dropped by JetStream's duplicate window instead of reaching consumers twice.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from typing import Final

from nats.errors import Error as NatsError
from nats.js.client import JetStreamContext

from bybit_hybrid.bus.payloads import PositionMessage, encode
from bybit_hybrid.bus.subjects import check_account, position_msg_id, positions_subject
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
        self._queue: collections.deque[tuple[str, bytes]] = collections.deque()
        self._max_backlog = max_backlog
        self._wake = asyncio.Event()
        self._drained = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.stats = {"published": 0, "duplicates": 0, "dropped": 0, "retries": 0}

    def listener(self, event: CoreEvent) -> None:
        if not isinstance(event, _LIFECYCLE):
            return  # marks travel on bybit.marks.*; the replayable log holds the lifecycle
        view = event.view
        message = PositionMessage(self.account, event.kind, "bybit", to_contract(view))
        msg_id = position_msg_id(self.account, view.key.symbol, view.key.idx, event.kind, view.seq)
        if len(self._queue) >= self._max_backlog:
            self._queue.popleft()
            self.stats["dropped"] += 1
            log.error("bus: position backlog full (%d), oldest event dropped", self._max_backlog)
        self._queue.append((msg_id, encode(message)))
        self._drained.clear()
        self._wake.set()

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
        while True:
            if not self._queue:
                self._drained.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            msg_id, payload = self._queue[0]
            try:
                ack = await js.publish(
                    self.subject, payload, timeout=2.0, headers={"Nats-Msg-Id": msg_id}
                )
            except (NatsError, TimeoutError) as exc:
                self.stats["retries"] += 1
                log.debug("bus: publishing a position event failed, retrying: %s", exc)
                await asyncio.sleep(_RETRY_S)
                continue
            self._queue.popleft()
            self.stats["duplicates" if ack.duplicate else "published"] += 1
