"""Event delivery for every stream: listeners synchronously, the seed handler via a mailbox.

Opens, changes and closes are delivered in order and
never dropped; marks are conflated per position when the handler is slower than the feed; a
failing listener or handler is logged by name and counted, never fatal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Final

from bybit_hybrid.protocol.events import (
    MarkUpdated,
    PositionChanged,
    PositionClosed,
    PositionEvent,
    PositionOpened,
    to_contract,
)
from bybit_hybrid.protocol.hybrid import CoreEvent
from bybit_hybrid.router.mailbox import Mailbox

log = logging.getLogger(__name__)

EventHandler = Callable[[str, dict[str, Any]], Awaitable[None]]
CoreListener = Callable[[CoreEvent], None]
EXCHANGE: Final = "bybit"
POSITION_UPDATE: Final = "position_update"
_LIFECYCLE: Final = (PositionOpened, PositionChanged, PositionClosed)


def name_of(fn: object) -> str:
    return getattr(fn, "__qualname__", None) or type(fn).__name__


class Fanout:
    """Listeners plus one mailbox-backed `event_handler`; `start()` runs the dispatcher."""

    def __init__(self, handler: EventHandler | None) -> None:
        self._handler = handler
        self._listeners: list[CoreListener] = []
        self._mailbox: Mailbox[PositionEvent] = Mailbox()
        self._dispatcher: asyncio.Task[None] | None = None
        self.handled_events = 0
        self.handler_errors = 0

    def add_listener(self, listener: CoreListener) -> None:
        self._listeners.append(listener)

    def emit(self, events: Iterable[CoreEvent]) -> None:
        for event in events:
            if isinstance(event, MarkUpdated):
                self._mailbox.put_mark(event.key, event)
            elif isinstance(event, _LIFECYCLE):
                self._mailbox.put_lifecycle(event.key, event)
            self.notify(event)

    def notify(self, event: CoreEvent) -> None:
        """Listeners only (events that are not positions, or positions delivered elsewhere)."""
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:
                log.exception("listener %s failed", name_of(listener))

    def start(self, name: str = "bybit-hybrid-dispatch") -> None:
        self._mailbox = Mailbox()  # a restart must not replay the previous run's backlog
        self._dispatcher = asyncio.create_task(self._dispatch(), name=name)

    async def stop(self) -> None:
        if self._dispatcher is not None:
            self._dispatcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._dispatcher
        self._dispatcher = None

    def stats(self) -> dict[str, int]:
        return {
            "handled_events": self.handled_events,
            "handler_errors": self.handler_errors,
            "mailbox_backlog": len(self._mailbox),
            "marks_conflated": self._mailbox.stats.marks_conflated,
        }

    async def _dispatch(self) -> None:
        while True:
            event = await self._mailbox.get()
            if self._handler is None:
                continue
            payload = {"exchange": EXCHANGE, "data": to_contract(event.view)}
            try:
                await self._handler(POSITION_UPDATE, payload)
                self.handled_events += 1
            except asyncio.CancelledError:
                raise
            except Exception:
                self.handler_errors += 1
                log.exception("event handler %s failed", name_of(self._handler))
