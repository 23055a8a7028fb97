"""Router: per-consumer mailboxes, marks conflated, failing handlers isolated and counted."""

from __future__ import annotations

import asyncio
import logging

import pytest

from bybit_hybrid.router.router import EventRouter, RoutedEvent, percentile


async def test_each_consumer_gets_events_in_order_and_a_failure_is_isolated(
    caplog: pytest.LogCaptureFixture,
) -> None:
    router = EventRouter()
    good: list[object] = []
    bad_calls: list[object] = []

    async def good_handler(event: RoutedEvent) -> None:
        good.append(event.data)

    async def flaky(event: RoutedEvent) -> None:
        bad_calls.append(event.data)
        if event.data == 2:
            raise RuntimeError("boom")

    router.on("x", good_handler, name="good")
    router.on("x", flaky, name="flaky")
    await router.start()
    for i in range(5):
        router.emit("x", i, "test", key="k")
    with caplog.at_level(logging.ERROR):
        await router.drain()
    await router.stop()
    assert good == [0, 1, 2, 3, 4] and bad_calls == [0, 1, 2, 3, 4]
    stats = router.stats()
    assert stats["flaky"]["errors"] == 1 and stats["flaky"]["handled"] == 4
    assert stats["good"]["errors"] == 0 and stats["good"]["handled"] == 5
    assert "handler flaky failed on x" in caplog.text


async def test_marks_conflate_per_key_for_a_slow_consumer() -> None:
    router = EventRouter()
    seen: list[object] = []
    gate = asyncio.Event()

    async def slow(event: RoutedEvent) -> None:
        await gate.wait()
        seen.append(event.data)

    router.on("mark", slow, name="slow")
    router.on("life", slow, name="slow")
    await router.start()
    router.emit("life", "open-A", "t", key="A")
    await asyncio.sleep(0)  # the consumer takes "open-A" and blocks on the gate
    for i in range(100):
        router.emit("mark", ("A", i), "t", key="A", conflate=True)
        router.emit("mark", ("B", i), "t", key="B", conflate=True)
    router.emit("life", "close-A", "t", key="A")
    assert router.stats()["slow"]["backlog"] == 3
    gate.set()
    await router.drain()
    await router.stop()
    assert seen == ["open-A", ("A", 99), ("B", 99), "close-A"]
    assert router.stats()["slow"]["marks_conflated"] == 198


async def test_latency_is_measured_from_the_original_receipt() -> None:
    clock = [100.0]
    router = EventRouter(clock=lambda: clock[0])

    async def handler(event: RoutedEvent) -> None:
        clock[0] += 0.004

    router.on("x", handler, name="h")
    await router.start()
    router.emit("x", 1, "t", received_at_s=99.0)  # re-emitted from an event received at 99
    await router.drain()
    await router.stop()
    assert router.stats()["h"]["latency_max_ms"] == pytest.approx(1004.0)


def test_percentile_nearest_rank() -> None:
    samples = [float(i) for i in range(1, 101)]
    assert percentile(samples, 50) == 50.0
    assert percentile(samples, 99) == 99.0
    assert percentile([], 99) == 0.0
