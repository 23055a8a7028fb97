"""The hub's publish loop with a fake JetStream: a mark that arrives while a batch is being
acknowledged goes out right after it (no pause), and a failed publish is retried later, the
newest mark of its symbol winning."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

from bybit_hybrid.bus.hub import MarkHub
from bybit_hybrid.bus.payloads import decode_mark
from bybit_hybrid.bus.settings import BusSettings
from bybit_hybrid.transport.endpoints import Endpoints
from tests.support import UNIT_S, wait_for


class _Ack:
    duplicate = False


class FakeJetStream:
    """Publishes block until `release()`; `fail_next` makes the next one raise."""

    def __init__(self) -> None:
        self.published: list[tuple[str, Decimal]] = []
        self.gate = asyncio.Event()
        self.fail_next = False

    async def publish(self, subject: str, payload: bytes, **_kw: Any) -> _Ack:
        await self.gate.wait()
        if self.fail_next:
            self.fail_next = False
            raise TimeoutError("no ack")
        mark = decode_mark(payload)
        self.published.append((mark.symbol, mark.mark_price))
        return _Ack()


async def _turns(n: int = 50) -> None:
    """Lets the loop run `n` times around: no wall clock, nothing timed."""
    for _ in range(n):
        await asyncio.sleep(0)


async def test_a_mark_arriving_during_a_publish_goes_out_right_after_it() -> None:
    hub = MarkHub(Endpoints.select(testnet=True), BusSettings("nats://127.0.0.1:1"))
    js = FakeJetStream()
    hub._js = js  # type: ignore[assignment]
    task = asyncio.create_task(hub._publish_loop())
    try:
        hub._on_mark("BTCUSDT", Decimal("65000"), 1, 10)
        await _turns()
        hub._on_mark("BTCUSDT", Decimal("65001"), 2, 11)  # while the first waits for its ack
        js.gate.set()
        await _turns()
        assert js.published == [("BTCUSDT", Decimal("65000")), ("BTCUSDT", Decimal("65001"))]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_failed_publish_is_kept_unless_a_newer_mark_of_its_symbol_waits() -> None:
    hub = MarkHub(Endpoints.select(testnet=True), BusSettings("nats://127.0.0.1:1"))
    js = FakeJetStream()
    js.fail_next = True
    hub._js = js  # type: ignore[assignment]
    task = asyncio.create_task(hub._publish_loop())
    try:
        hub._on_mark("ETHUSDT", Decimal("3000"), 1, 10)
        await _turns()
        hub._on_mark("ETHUSDT", Decimal("3001"), 2, 11)
        js.gate.set()
        await _turns()
        assert hub.stats["publish_errors"] == 1
        assert js.published == []  # the loop backs off after a failure ...
        # ... for min(0.5 s, heartbeat_s), then the newer mark goes out, once.
        want = [("ETHUSDT", Decimal("3001"))]
        await wait_for(lambda: js.published == want, 5 * UNIT_S, "the retry")
        await _turns()
        assert js.published == want
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
