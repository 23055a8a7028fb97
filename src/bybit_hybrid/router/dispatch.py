"""One consumer's delivery: its mailbox, and its handler run on it, inline while it keeps up.

Every consumer of core events (the seed `event_handler` of a stream, each router consumer)
is a `Dispatcher`. Events go into its `Mailbox` (lifecycle FIFO and never dropped, marks
conflated per key), and the handler runs on them one at a time, in order:

- **Inline while idle.** When nothing is queued and no handler is running, `put_*` runs the
  handler right away, inside the caller (for a ticker, picows's frame callback): a handler
  that finishes without waiting costs no task switch and no extra loop wake-up. It runs as
  the dispatcher's own task (`asyncio.current_task()`, `asyncio.timeout`, contextvars all
  behave as inside that task), whoever called `put_*`.
- **In the task once it waits.** A handler that suspends (a REST call, a sleep) is carried
  on by the dispatcher's task, which then drains whatever queued meanwhile. Marks arriving
  while it waits conflate per key, exactly as in a plain mailbox consumer.
- **In the task once it is slower than the feed.** Inline runs are budgeted: after
  `inline_budget_s` of handler time since the task last ran, events queue (marks conflate)
  and the task drains them on its next turn. A burst read in one callback (a backlog after a
  stall) thus costs a slow handler one call per position, not one per frame.
- A handler that raises is reported to `on_error` (logged and counted by the owner); the
  next event is handled as usual. `stop()` cancels a handler that is waiting.
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
import time
from asyncio import tasks as _tasks
from collections.abc import Awaitable, Callable, Coroutine, Generator, Hashable
from types import CoroutineType
from typing import Any, Final, Generic, TypeVar

from bybit_hybrid.router.mailbox import Mailbox
from bybit_hybrid.tasks import cancel_and_wait

E = TypeVar("E")
# Handler time run inline before the task takes over (the aiohttp reader's yield interval).
INLINE_BUDGET_S: Final = 0.0005
_Step = Coroutine[Any, Any, Any]
# The task running in a loop, looked up in C: 3.12+ has a C `current_task`; 3.11's is Python
# around this dict (once per inline event, so the lookup is worth a name of its own).
_current_task: Callable[[asyncio.AbstractEventLoop], asyncio.Task[Any] | None] = (
    asyncio.current_task if sys.version_info >= (3, 12) else _tasks._current_tasks.get  # type: ignore[attr-defined]
)
_enter_task, _leave_task = _tasks._enter_task, _tasks._leave_task


class _Rest:
    """The rest of a handler coroutine that suspended during its inline first step: awaiting
    this hands what it yielded to the awaiting task and drives the coroutine from there on."""

    __slots__ = ("_coro", "_yielded", "event")

    def __init__(self, event: Any, coro: _Step, yielded: Any) -> None:
        self.event = event
        self._coro, self._yielded = coro, yielded

    def close(self) -> None:
        self._coro.close()

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, value = self._coro, self._yielded
        while True:
            try:
                sent = yield value
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # a cancellation (or a throw) goes to the handler
                try:
                    value = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    value = coro.send(sent)
                except StopIteration as stop:
                    return stop.value


async def _awaiting(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


class Dispatcher(Generic[E]):
    """See the module docstring. `on_done(event)` / `on_error(event)` after each handler;
    without `on_done`, `handled` counts the handlers that finished."""

    def __init__(
        self,
        name: str,
        handle: Callable[[E], Awaitable[Any]],
        *,
        on_done: Callable[[E], None] | None = None,
        on_error: Callable[[E], None],
        inline_budget_s: float | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.name = name
        self._budget_s = INLINE_BUDGET_S if inline_budget_s is None else inline_budget_s
        self._clock = clock
        self._inline_s = 0.0  # handler time run inline since the task last ran
        self.mailbox: Mailbox[E] = Mailbox()
        self._handle = handle
        self._on_done = on_done
        self._on_error = on_error
        self.handled = 0
        self._context = contextvars.copy_context()
        self._task: asyncio.Task[None] | None = None
        # Set while the task is parked with nothing to do: the next event may run inline.
        self._waiter: asyncio.Future[_Rest | None] | None = None
        self._busy = False  # a handler is running (inline or in the task), or the task drains

    # --- delivery ---------------------------------------------------------------------------

    # Idle (not busy, the task parked) implies an empty mailbox: the task parks only once it
    # has drained it, and an inline run drains it before it clears `_busy`. So an event put
    # into an idle dispatcher is handled at once, without passing through the mailbox.

    def put_lifecycle(self, key: Hashable, event: E) -> None:
        if self._busy or self._waiter is None:
            self.mailbox.put_lifecycle(key, event)
        else:
            self._run_inline(event)

    def put_mark(self, key: Hashable, event: E) -> None:
        if self._busy or self._waiter is None:
            self.mailbox.put_mark(key, event)
        else:
            self._run_inline(event)

    def idle(self) -> bool:
        """Nothing queued and no handler running or waiting."""
        return not self._busy and len(self.mailbox) == 0

    # --- lifecycle --------------------------------------------------------------------------

    def start(self, *, name: str | None = None, fresh: bool = False) -> None:
        """Starts the task (in the running loop); `fresh` drops a previous run's backlog."""
        self.name = name or self.name
        if fresh:
            self.mailbox = Mailbox()
        if self._task is None:
            # The handler sees the context of whoever started it, as a task created here would.
            self._context = contextvars.copy_context()
            self._task = asyncio.get_running_loop().create_task(
                self._serve(), name=self.name, context=self._context
            )

    async def stop(self) -> None:
        task, self._task, self._waiter = self._task, None, None
        if task is not None:
            await cancel_and_wait([task])
        self._busy = False

    # --- internals --------------------------------------------------------------------------

    def _run_inline(self, event: E | None) -> None:
        """Handles `event`, then whatever its handler put meanwhile, here and now, until the
        box is empty or a handler waits (the task then carries it on and drains the rest)."""
        self._busy = True
        task, waiter = self._task, self._waiter
        assert task is not None and waiter is not None
        try:
            while event is not None:
                rest = self._first_step(task, event)
                if rest is not None or self._inline_s > self._budget_s:
                    # The task carries on (a waiting handler) or takes over (over budget):
                    # stays busy until it has drained the box.
                    waiter.set_result(rest)
                    return
                event = self.mailbox.get_nowait()
        except BaseException:
            self._busy = False
            raise
        self._busy = False

    def _first_step(self, task: asyncio.Task[None], event: E) -> _Rest | None:
        """Runs the handler up to its first suspension, as `task`; None if it finished."""
        loop = task.get_loop()
        outer = _current_task(loop)
        if outer is not None:
            _leave_task(loop, outer)
        _enter_task(loop, task)
        clock = self._clock
        started = clock()  # the handler's own time counts against the inline budget
        try:
            coro, yielded = self._context.run(self._start, event)
        except StopIteration:
            self._inline_s += clock() - started
            if self._on_done is None:  # `_finished`, inline: this is once per event
                self.handled += 1
            else:
                self._on_done(event)
            return None
        except Exception:
            self._inline_s += clock() - started
            self._on_error(event)
            return None
        finally:
            _leave_task(loop, task)
            if outer is not None:
                _enter_task(loop, outer)
        self._inline_s += clock() - started
        return _Rest(event, coro, yielded)

    def _finished(self, event: E) -> None:
        if self._on_done is None:
            self.handled += 1
        else:
            self._on_done(event)

    def _start(self, event: E) -> tuple[_Step, Any]:
        """The handler's coroutine and what it first yielded (StopIteration: it finished)."""
        awaitable = self._handle(event)
        # `_coroutine`, inline for a coroutine (the usual handler): one call less per event.
        coro = awaitable if awaitable.__class__ is CoroutineType else self._as_coroutine(awaitable)
        try:
            return coro, coro.send(None)
        except StopIteration:
            raise
        except BaseException:
            coro.close()
            raise

    def _coroutine(self, event: E) -> _Step:
        return self._as_coroutine(self._handle(event))

    @staticmethod
    def _as_coroutine(awaitable: Awaitable[Any]) -> _Step:
        if awaitable.__class__ is CoroutineType or isinstance(awaitable, Coroutine):
            return awaitable
        return _awaiting(awaitable)

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._busy = True
            while (event := self.mailbox.get_nowait()) is not None:
                await self._complete(event, None)
            self._busy = False
            waiter = self._waiter = loop.create_future()
            try:
                rest = await waiter
            except asyncio.CancelledError:
                pending = waiter.result() if waiter.done() and not waiter.cancelled() else None
                if pending is not None:
                    pending.close()  # stopped before carrying on a waiting handler
                raise
            self._waiter = None
            self._inline_s = 0.0
            if rest is not None:
                await self._complete(rest.event, rest)

    async def _complete(self, event: E, rest: Awaitable[Any] | None) -> None:
        """Runs the handler on `event` (or carries on `rest`, its suspended inline run)."""
        try:
            await (self._coroutine(event) if rest is None else rest)
        except asyncio.CancelledError:
            raise
        except Exception:
            self._on_error(event)
        else:
            self._finished(event)
