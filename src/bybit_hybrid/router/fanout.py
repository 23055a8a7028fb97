"""Event delivery for every stream: listeners synchronously, the seed handler via a dispatcher.

Opens, changes and closes are delivered in order and never dropped; marks are conflated per
position when the handler is slower than the feed; a failing listener or handler is logged by
name and counted, never fatal. The handler runs inline (inside the frame's callback) while it
keeps up, and in the dispatcher's task once it waits (`router/dispatch.py`).
"""

from __future__ import annotations

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
from bybit_hybrid.router.dispatch import Dispatcher

log = logging.getLogger(__name__)

EventHandler = Callable[[str, dict[str, Any]], Awaitable[None]]
CoreListener = Callable[[CoreEvent], None]
EXCHANGE: Final = "bybit"
POSITION_UPDATE: Final = "position_update"
_LIFECYCLE: Final = (PositionOpened, PositionChanged, PositionClosed)


def name_of(fn: object) -> str:
    return getattr(fn, "__qualname__", None) or type(fn).__name__


class Fanout:
    """Listeners plus one `event_handler` behind a `Dispatcher`; `start()` runs it."""

    def __init__(self, handler: EventHandler | None) -> None:
        self._handler = handler
        self._listeners: list[CoreListener] = []
        self._dispatcher: Dispatcher[PositionEvent] | None = None
        if handler is not None:
            # No `on_done`: the dispatcher counts finished handlers itself (a call less per event).
            self._dispatcher = Dispatcher(
                "bybit-hybrid-dispatch", self._deliver, on_error=self._failed
            )
        self.handler_errors = 0

    @property
    def handled_events(self) -> int:
        return 0 if self._dispatcher is None else self._dispatcher.handled

    def add_listener(self, listener: CoreListener) -> None:
        self._listeners.append(listener)

    def emit(self, events: Iterable[CoreEvent]) -> None:
        dispatcher = self._dispatcher
        for event in events:
            if dispatcher is not None:
                if event.__class__ is MarkUpdated:
                    dispatcher.put_mark(event.view.key, event)  # not `.key`: a property call
                elif isinstance(event, _LIFECYCLE):
                    dispatcher.put_lifecycle(event.key, event)
            if self._listeners:
                self.notify(event)

    def notify(self, event: CoreEvent) -> None:
        """Listeners only (events that are not positions, or positions delivered elsewhere)."""
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:
                log.exception("listener %s failed", name_of(listener))

    def start(self, name: str = "bybit-hybrid-dispatch") -> None:
        if self._dispatcher is not None:
            # A restart must not replay the previous run's backlog.
            self._dispatcher.start(name=name, fresh=True)

    async def stop(self) -> None:
        if self._dispatcher is not None:
            await self._dispatcher.stop()

    def stats(self) -> dict[str, int]:
        box = self._dispatcher.mailbox if self._dispatcher is not None else None
        return {
            "handled_events": self.handled_events,
            "handler_errors": self.handler_errors,
            "mailbox_backlog": 0 if box is None else len(box),
            "marks_conflated": 0 if box is None else box.stats.marks_conflated,
        }

    def _deliver(self, event: PositionEvent) -> Awaitable[None]:
        assert self._handler is not None
        return self._handler(
            POSITION_UPDATE, {"exchange": EXCHANGE, "data": to_contract(event.view)}
        )

    def _failed(self, event: PositionEvent) -> None:
        self.handler_errors += 1
        log.exception("event handler %s failed", name_of(self._handler))
