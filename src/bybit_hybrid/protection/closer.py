"""Verified market exits: reduce-only orders until the position list shows the position flat.

An acknowledged order is not an exit: it may fill partly, the position may have grown meanwhile,
or the order may be refused. So the closer asks the position list before every order and orders
exactly the size it shows, then looks again after `verify_after_s`; a failure waits the retry
policy's backoff. It stops when the list shows the position flat (or the other side: a new
position that is not ours to close) or when the caller cancels it (the stream reported the close).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

from bybit_hybrid.protection.gateway import ProtectionGateway
from bybit_hybrid.protection.retry import RetryPolicy, is_position_gone
from bybit_hybrid.protocol.domain import PositionKey, Side
from bybit_hybrid.wire.retcodes import BybitError

log = logging.getLogger(__name__)

# Long enough for a market order's fill to reach the position list, short enough to matter.
VERIFY_AFTER_S: Final = 0.5


@dataclass(frozen=True, slots=True)
class CloseResult:
    """How a verified exit went: orders acknowledged, failed calls, the last order id."""

    orders: int
    failures: int
    order_id: str | None


class Closer:
    """Closes one position at a time per caller; stateless between calls."""

    def __init__(
        self,
        exchange: ProtectionGateway,
        retry: RetryPolicy,
        sleep: Callable[[float], Awaitable[None]],
        *,
        verify_after_s: float = VERIFY_AFTER_S,
        on_order: Callable[[], None] = lambda: None,
        on_failure: Callable[[], None] = lambda: None,
    ) -> None:
        self._exchange = exchange
        self._retry = retry
        self._sleep = sleep
        self.verify_after_s = verify_after_s
        # Counted as they happen: a caller may be cancelled mid-close (the stream reported the
        # position closed) and never see its CloseResult.
        self._on_order = on_order
        self._on_failure = on_failure

    async def close_until_flat(self, key: PositionKey, side: Side) -> CloseResult:
        orders = failures = 0
        order_id: str | None = None
        while True:
            try:
                row = await self._exchange.open_row(key)
                if row is None or row.side is not side:
                    return CloseResult(orders, failures, order_id)
                order_id = await self._exchange.close_at_market(key, side, row.size)
            except BybitError as exc:
                failures += 1
                self._on_failure()
                await self._sleep(self._wait_s(key, exc, failures))
                continue
            orders += 1
            self._on_order()
            log.warning("%s: market close of %s sent (order %s)", key, row.size, order_id)
            await self._sleep(self.verify_after_s)

    def _wait_s(self, key: PositionKey, exc: BybitError, failures: int) -> float:
        if is_position_gone(exc):
            # The order found nothing to reduce: the position list will show it flat soon.
            return self.verify_after_s
        delay_s = self._retry.delay_s(exc, failures - 1, self._exchange.server_now_ms())
        level = logging.WARNING if failures <= self._retry.max_retries else logging.ERROR
        log.log(
            level, "%s: market close failed (%d), retry in %.2fs: %s", key, failures, delay_s, exc
        )
        return delay_s
