"""Builds the position source the configured mode asks for, behind one small protocol.

Consumers (`run`, the dashboard, the router) depend only on `PositionStream`: typed core
events through `add_listener`, plus start/stop/stats/status. The rollout modes plug in here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from bybit_hybrid.errors import ConfigError
from bybit_hybrid.protocol.hybrid import CoreEvent
from bybit_hybrid.service.settings import AppSettings
from bybit_hybrid.stream import BybitHybridStream, EventHandler


class PositionStream(Protocol):
    """What every mode's stream offers (BybitHybridStream, the REST poller, the rollout mux)."""

    def add_listener(self, listener: Callable[[CoreEvent], None]) -> None: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def wait_ready(self, timeout_s: float = 10.0) -> None: ...

    def get_stats(self) -> dict[str, Any]: ...

    def get_status(self) -> dict[str, Any]: ...


def make_position_stream(
    settings: AppSettings,
    api_key: str,
    api_secret: str,
    event_handler: EventHandler | None,
    endpoint_kwargs: dict[str, Any],
) -> PositionStream:
    """The stream for `settings.mode`; only `hybrid` exists until the rollout modes land."""
    if settings.mode != "hybrid":
        raise ConfigError(f"setting mode: {settings.mode!r} is not available yet")
    return BybitHybridStream(api_key, api_secret, event_handler, **endpoint_kwargs)
