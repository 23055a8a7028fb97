"""Dispatcher: inline while idle, the task once a handler waits; FIFO, conflation, isolation."""

from __future__ import annotations

import asyncio
import contextvars
import math
from typing import Any

import pytest

from bybit_hybrid.router import dispatch
from bybit_hybrid.router.dispatch import Dispatcher
from tests.support import wait_for

_VAR: contextvars.ContextVar[int] = contextvars.ContextVar("_VAR", default=0)


@pytest.fixture(autouse=True)
def _no_inline_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    """Inline runs are asserted here: a preempted handler must not hand over to the task."""
    monkeypatch.setattr(dispatch, "INLINE_BUDGET_S", math.inf)


class Recorder:
    """A dispatcher over `handle`, recording what was done and what failed."""

    def __init__(self, handle: Any) -> None:
        self.done: list[object] = []
        self.failed: list[object] = []
        self.dispatcher: Dispatcher[object] = Dispatcher(
            "test", handle, on_done=self.done.append, on_error=self.failed.append
        )


async def _started(recorder: Recorder) -> Dispatcher[object]:
    recorder.dispatcher.start()
    await asyncio.sleep(0)  # the task parks: from here on an idle dispatcher runs inline
    return recorder.dispatcher


async def test_a_handler_that_does_not_wait_runs_inside_put() -> None:
    seen: list[object] = []

    async def handle(event: object) -> None:
        seen.append(event)

    rec = Recorder(handle)
    dispatcher = await _started(rec)
    dispatcher.put_lifecycle("A", "open-A")
    dispatcher.put_mark("A", "mark-A")
    # No await since the puts: both were handled in them.
    assert seen == ["open-A", "mark-A"] and rec.done == ["open-A", "mark-A"]
    assert dispatcher.idle()
    await dispatcher.stop()


async def test_the_handler_runs_as_the_dispatchers_task_inline_and_after_waiting() -> None:
    tasks: list[asyncio.Task[Any] | None] = []

    async def handle(event: object) -> None:
        tasks.append(asyncio.current_task())
        async with asyncio.timeout(5):  # needs a current task, inline too
            await asyncio.sleep(0)
        tasks.append(asyncio.current_task())

    rec = Recorder(handle)
    dispatcher = await _started(rec)
    outer = asyncio.current_task()
    dispatcher.put_lifecycle("A", "x")  # called from this task: runs as the dispatcher's
    assert asyncio.current_task() is outer  # and this task is current again afterwards
    await wait_for(lambda: len(rec.done) == 1)
    assert len(tasks) == 2 and tasks[0] is tasks[1] and tasks[0] is not outer
    assert tasks[0] is not None and tasks[0].get_name() == "test"
    # From a plain loop callback (where a frame arrives), there is no task: still the same.
    asyncio.get_running_loop().call_soon(dispatcher.put_lifecycle, "A", "y")
    await wait_for(lambda: len(rec.done) == 2)
    assert tasks[2] is tasks[0] and tasks[3] is tasks[0] and rec.failed == []
    await dispatcher.stop()


async def test_contextvars_persist_across_inline_and_task_runs() -> None:
    values: list[int] = []

    async def handle(event: object) -> None:
        values.append(_VAR.get())
        _VAR.set(_VAR.get() + 1)
        if event == "wait":
            await asyncio.sleep(0)

    rec = Recorder(handle)
    token = _VAR.set(10)  # set after the dispatcher was made, before it starts: it is seen
    dispatcher = await _started(rec)
    _VAR.reset(token)
    for event in ("a", "wait", "b", "c"):
        dispatcher.put_lifecycle("A", event)
    await wait_for(lambda: len(rec.done) == 4)
    assert values == [10, 11, 12, 13] and _VAR.get() == 0  # the caller's context untouched
    await dispatcher.stop()


async def test_events_put_while_a_handler_waits_follow_in_order_and_marks_conflate() -> None:
    gate = asyncio.Event()
    seen: list[object] = []

    async def handle(event: object) -> None:
        if event == "open-A":
            await gate.wait()
        seen.append(event)

    rec = Recorder(handle)
    dispatcher = await _started(rec)
    dispatcher.put_lifecycle("A", "open-A")  # starts inline, then waits on the gate
    for i in range(100):
        dispatcher.put_mark("A", ("A", i))
        dispatcher.put_mark("B", ("B", i))
    dispatcher.put_lifecycle("A", "close-A")
    for i in range(5):
        dispatcher.put_lifecycle("C", f"life-{i}")
    assert seen == [] and not dispatcher.idle()
    assert len(dispatcher.mailbox) == 8  # A's and B's newest marks, close-A, five lifecycles
    gate.set()
    await wait_for(dispatcher.idle)
    assert seen == [
        "open-A",
        ("A", 99),
        ("B", 99),
        "close-A",
        *[f"life-{i}" for i in range(5)],
    ]
    assert dispatcher.mailbox.stats.marks_conflated == 198 and rec.failed == []
    await dispatcher.stop()


async def test_a_failing_handler_is_reported_and_the_next_event_still_handled() -> None:
    async def handle(event: object) -> None:
        if event == "sync-boom":
            raise RuntimeError("boom")
        if event == "async-boom":
            await asyncio.sleep(0)
            raise RuntimeError("boom later")

    rec = Recorder(handle)
    dispatcher = await _started(rec)
    for event in ("a", "sync-boom", "b", "async-boom", "c"):
        dispatcher.put_lifecycle("A", event)
    await wait_for(lambda: len(rec.done) + len(rec.failed) == 5)
    assert rec.done == ["a", "b", "c"] and rec.failed == ["sync-boom", "async-boom"]
    dispatcher.put_lifecycle("A", "d")
    assert rec.done[-1] == "d"  # idle again: inline again
    await dispatcher.stop()


async def test_a_timeout_inside_a_waiting_handler_cancels_only_that_handler() -> None:
    async def handle(event: object) -> None:
        if event == "slow":
            async with asyncio.timeout(0.01):
                await asyncio.Event().wait()

    rec = Recorder(handle)
    dispatcher = await _started(rec)
    dispatcher.put_lifecycle("A", "slow")
    dispatcher.put_lifecycle("A", "next")
    await wait_for(lambda: len(rec.done) + len(rec.failed) == 2)
    assert rec.failed == ["slow"] and rec.done == ["next"]
    await dispatcher.stop()


async def test_a_put_from_inside_the_handler_is_handled_after_it_in_order() -> None:
    seen: list[object] = []
    dispatcher: Dispatcher[object]

    async def handle(event: object) -> None:
        seen.append(("start", event))
        if event == "first":
            dispatcher.put_lifecycle("A", "second")
        seen.append(("end", event))

    rec = Recorder(handle)
    dispatcher = await _started(rec)
    dispatcher.put_lifecycle("A", "first")
    assert seen == [("start", "first"), ("end", "first"), ("start", "second"), ("end", "second")]
    await dispatcher.stop()


async def test_stop_cancels_a_waiting_handler_and_later_puts_only_queue() -> None:
    cleaned: list[str] = []

    async def handle(event: object) -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cleaned.append(str(event))

    rec = Recorder(handle)
    dispatcher = await _started(rec)
    dispatcher.put_lifecycle("A", "stuck")
    await dispatcher.stop()
    assert cleaned == ["stuck"]
    dispatcher.put_lifecycle("A", "after")
    await asyncio.sleep(0)
    assert cleaned == ["stuck"] and len(dispatcher.mailbox) == 1


async def test_stop_right_after_a_handler_started_waiting_still_cleans_it_up() -> None:
    cleaned: list[str] = []

    async def handle(event: object) -> None:
        try:
            await asyncio.sleep(0)
            await asyncio.Event().wait()
        finally:
            cleaned.append(str(event))

    rec = Recorder(handle)
    dispatcher = await _started(rec)
    dispatcher.put_lifecycle("A", "x")  # suspended inline; the task has not picked it up yet
    await dispatcher.stop()
    assert cleaned == ["x"]


async def test_a_handler_returning_a_plain_awaitable_is_awaited() -> None:
    loop = asyncio.get_running_loop()
    futures: list[asyncio.Future[None]] = []

    def handle(event: object) -> asyncio.Future[None]:
        future: asyncio.Future[None] = loop.create_future()
        futures.append(future)
        return future

    rec = Recorder(handle)
    dispatcher = await _started(rec)
    dispatcher.put_lifecycle("A", "x")
    dispatcher.put_lifecycle("A", "y")
    assert rec.done == [] and len(futures) == 1  # y waits behind x
    futures[0].set_result(None)
    await wait_for(lambda: len(futures) == 2)
    futures[1].set_result(None)
    await wait_for(lambda: rec.done == ["x", "y"])
    await dispatcher.stop()


async def test_before_start_events_wait_and_are_handled_once_started() -> None:
    seen: list[object] = []

    async def handle(event: object) -> None:
        seen.append(event)

    rec = Recorder(handle)
    rec.dispatcher.put_lifecycle("A", "early")
    assert seen == []
    rec.dispatcher.start()
    await wait_for(lambda: seen == ["early"])
    await rec.dispatcher.stop()


async def test_a_handler_failing_before_its_coroutine_exists_is_isolated_in_the_task_too() -> None:
    gate = asyncio.Event()

    async def wait_for_gate() -> None:
        await gate.wait()

    async def nothing() -> None:
        return None

    def handle(event: object) -> Any:
        if event == "boom":
            raise RuntimeError("failed while building the call")  # e.g. its payload
        return wait_for_gate() if event == "first" else nothing()

    rec = Recorder(handle)
    dispatcher = await _started(rec)
    dispatcher.put_lifecycle("A", "boom")  # inline
    dispatcher.put_lifecycle("A", "first")  # inline, then waits: what follows goes to the task
    dispatcher.put_lifecycle("A", "boom")
    dispatcher.put_lifecycle("A", "last")
    gate.set()
    await wait_for(lambda: len(rec.done) + len(rec.failed) == 4)
    assert rec.failed == ["boom", "boom"] and rec.done == ["first", "last"]
    dispatcher.put_lifecycle("A", "after")
    assert rec.done[-1] == "after"  # the task survived: idle, inline again
    await dispatcher.stop()


async def test_a_handler_slower_than_a_burst_hands_over_to_the_task_and_marks_conflate() -> None:
    clock = [0.0]
    seen: list[object] = []

    async def slow(event: object) -> None:
        clock[0] += 0.001  # each call costs 1 ms of (fake) handler time, above the budget
        seen.append(event)

    done: list[object] = []
    dispatcher: Dispatcher[object] = Dispatcher(
        "test",
        slow,
        on_done=done.append,
        on_error=done.append,
        inline_budget_s=0.0005,
        clock=lambda: clock[0],
    )
    dispatcher.start()
    await asyncio.sleep(0)
    # One read's worth of frames, in one callback: the first runs inline and uses the budget.
    for i in range(100):
        dispatcher.put_mark("A", ("A", i))
        dispatcher.put_mark("B", ("B", i))
    dispatcher.put_lifecycle("A", "close-A")
    assert seen == [("A", 0)]
    await wait_for(dispatcher.idle)
    assert seen == [("A", 0), ("B", 99), ("A", 99), "close-A"]  # queued in arrival order
    assert dispatcher.mailbox.stats.marks_conflated == 197
    # The task drained the box: the budget starts again, inline.
    dispatcher.put_mark("A", ("A", 100))
    assert seen[-1] == ("A", 100)
    await dispatcher.stop()


async def test_without_on_done_handled_counts_finished_handlers_inline_and_in_the_task() -> None:
    gate = asyncio.Event()
    failed: list[object] = []

    async def handle(event: object) -> None:
        if event == "wait":
            await gate.wait()
        if event == "boom":
            raise ValueError(event)

    dispatcher: Dispatcher[object] = Dispatcher("test", handle, on_error=failed.append)
    dispatcher.start()
    await asyncio.sleep(0)
    dispatcher.put_lifecycle("A", "inline")
    dispatcher.put_lifecycle("A", "boom")
    assert dispatcher.handled == 1 and failed == ["boom"]  # a failure is not handled
    dispatcher.put_lifecycle("A", "wait")  # suspends: the task finishes it
    dispatcher.put_lifecycle("A", "queued")
    assert dispatcher.handled == 1
    gate.set()
    await wait_for(dispatcher.idle)
    assert dispatcher.handled == 3 and failed == ["boom"]
    await dispatcher.stop()
