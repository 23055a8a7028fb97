"""Shared test helpers: a time unit for fault tests and condition waiting without fixed sleeps."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable

# DESIGN §4: the keys of an event's `data`, no more, no fewer. Written out here, not imported
# from the product, so a test comparing against it can fail.
CONTRACT_KEYS = frozenset(
    {
        "symbol",
        "position_idx",
        "side",
        "size",
        "entry_price",
        "mark_price",
        "unrealized_pnl",
        "leverage",
        "position_status",
        "stop_loss",
        "take_profit",
        "source",
        "exchange_ts",
        "cs",
        "seq",
        "status",
    }
)

# Every integration timeout is a multiple of this unit; raise it on a slow machine.
UNIT_S = float(os.environ.get("BYBIT_HYBRID_TEST_UNIT_S", "1.0"))


async def wait_for(
    condition: Callable[[], bool | Awaitable[bool]],
    timeout_s: float = 5 * UNIT_S,
    what: str = "condition",
    poll_s: float = 0.01,
) -> None:
    """Polls `condition` until true; fails with `what` named after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.1f}s waiting for {what}")
        await asyncio.sleep(poll_s)


def wait_for_sync(
    condition: Callable[[], bool], timeout_s: float = 5 * UNIT_S, what: str = "condition"
) -> None:
    """Thread-friendly version for code under test that runs its own threads (pybit)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.1f}s waiting for {what}")
        time.sleep(0.01)
