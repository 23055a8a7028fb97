"""What rollout needs of the streams it is handed: the hybrid stream's shape and the modes' rules.

The composition root (`service.streams.rollout_stream`) builds the hybrid stream and, where
REST drives, the REST-only stream, and injects both into `RolloutStream`; rollout never
imports `stream.py`. `HybridSource` is the part of `BybitHybridStream` (or a bus worker) that
the modes use.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Final, Literal, Protocol, cast

from bybit_hybrid.protocol.events import PositionView
from bybit_hybrid.protocol.failover import cutover_streams
from bybit_hybrid.protocol.hybrid import CoreEvent, HybridConfig, HybridCore
from bybit_hybrid.transport.endpoints import Endpoints
from bybit_hybrid.transport.rest import BybitRestClient

RolloutMode = Literal["canary", "parallel", "cutover", "hybrid"]
MODES: Final = ("canary", "parallel", "cutover", "hybrid")
# The modes in which REST (the REST-only stream) drives what consumers see.
REST_DRIVES: Final = ("canary", "parallel")


class HybridSource(Protocol):
    """The hybrid stream as rollout uses it (`BybitHybridStream`, `bus.worker.BusHybridStream`)."""

    endpoints: Endpoints

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def wait_ready(self, timeout_s: float = 10.0) -> None: ...

    def add_listener(self, listener: Callable[[CoreEvent], None]) -> None: ...

    @property
    def core(self) -> HybridCore: ...

    @property
    def rest(self) -> BybitRestClient: ...

    def apply(self, feed: Callable[[HybridCore, float], None]) -> None: ...

    def now(self) -> float: ...

    def positions(self) -> list[PositionView]: ...

    def get_stats(self) -> dict[str, Any]: ...

    def get_status(self) -> dict[str, Any]: ...


def check_mode(mode: str) -> RolloutMode:
    """`mode` if it is a rollout mode, else a ValueError naming it."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    return cast(RolloutMode, mode)


def rest_drives(mode: str) -> bool:
    """True where the REST-only stream drives the events (canary, parallel)."""
    return mode in REST_DRIVES


def hybrid_config(mode: str, cutover_pct: float, config: HybridConfig | None) -> HybridConfig:
    """The hybrid stream's config for `mode`: in cutover, only the symbols in the `cutover_pct`
    share (stable sha256 buckets) are streamed."""
    config = config or HybridConfig()
    if mode != "cutover":
        return config
    return dataclasses.replace(
        config, stream_symbol=lambda symbol: cutover_streams(symbol, cutover_pct)
    )
