"""The API every position stream offers (hybrid, REST-only, rollout mux), and `async with`.

`BybitHybridStream`, `AdaptiveBybitStream` and `RolloutStream` all derive from
`PositionStream`, so consumers (`run`, the dashboard, the router, protection) depend on this
one contract, and the context-manager plumbing is written once.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Self

if TYPE_CHECKING:
    from bybit_hybrid.protocol.hybrid import CoreEvent


class PositionStream(abc.ABC):
    """Start, wait for the first snapshot, listen to typed core events, stop; or `async with`."""

    @abc.abstractmethod
    async def start(self) -> None: ...

    @abc.abstractmethod
    async def stop(self) -> None:
        """Stops every task and closes every socket and HTTP session; never raises."""

    @abc.abstractmethod
    async def wait_ready(self, timeout_s: float = 10.0) -> None:
        """Waits for the first REST snapshot of the positions to be merged."""

    @abc.abstractmethod
    def add_listener(self, listener: Callable[[CoreEvent], None]) -> None:
        """Receives every event synchronously, typed (positions, sockets, REST, alerts)."""

    @abc.abstractmethod
    def get_stats(self) -> dict[str, Any]: ...

    @abc.abstractmethod
    def get_status(self) -> dict[str, Any]: ...

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()
