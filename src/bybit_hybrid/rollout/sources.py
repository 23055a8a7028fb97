"""What rollout is handed and tuned by: the hybrid stream's shape, the modes and their config.

The composition root (`service.streams.rollout_stream`) builds the hybrid stream and, where
REST drives, the REST-only stream, and injects both into `RolloutStream`; rollout never
imports `stream.py`. `HybridSource` is the part of `BybitHybridStream` (or a bus worker) that
the modes use.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol, cast

from bybit_hybrid.protocol.alerts import AlertConfig
from bybit_hybrid.protocol.compare import CompareConfig
from bybit_hybrid.protocol.events import PositionView
from bybit_hybrid.protocol.failover import FailoverConfig, cutover_streams, quiet_shard_ping_s
from bybit_hybrid.protocol.hybrid import CoreEvent, HybridConfig, HybridCore
from bybit_hybrid.protocol.polling import PollConfig
from bybit_hybrid.transport.endpoints import Endpoints
from bybit_hybrid.transport.rest import BybitRestClient

RolloutMode = Literal["canary", "parallel", "cutover", "hybrid"]
MODES: Final = ("canary", "parallel", "cutover", "hybrid")
# The modes in which REST (the REST-only stream) drives what consumers see.
REST_DRIVES: Final = ("canary", "parallel")


@dataclass(frozen=True, slots=True)
class RolloutConfig:
    """Everything the rollout machinery tunes; `service.streams` builds it from AppSettings."""

    cutover_pct: float = 0.0
    failover: FailoverConfig = field(default_factory=FailoverConfig)
    alerts: AlertConfig = field(default_factory=AlertConfig)
    poll: PollConfig = field(default_factory=PollConfig)
    compare: CompareConfig = field(default_factory=CompareConfig)
    # How often the streams are sampled for failover and alerts.
    eval_interval_s: float = 0.25

    def __post_init__(self) -> None:
        if not 0 <= self.cutover_pct <= 100:
            raise ValueError("cutover_pct must be within 0..100")
        if self.eval_interval_s <= 0:
            raise ValueError("eval_interval_s must be positive")


class HybridSource(Protocol):
    """The hybrid stream as rollout uses it (`BybitHybridStream`, with or without `bus_url`)."""

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


def hybrid_config(mode: str, rollout: RolloutConfig, config: HybridConfig | None) -> HybridConfig:
    """The hybrid stream's config for `mode`: in cutover, only the symbols in the rollout's
    `cutover_pct` share (stable sha256 buckets) are streamed; where the streams drive, public
    sockets get the idle ping the failover's quiet-shard rule needs (unless one is set)."""
    config = config or HybridConfig()
    if mode == "cutover":
        pct = rollout.cutover_pct
        config = dataclasses.replace(
            config, stream_symbol=lambda symbol: cutover_streams(symbol, pct)
        )
    if not rest_drives(mode) and config.session.idle_ping_s is None:
        # The failover judges a quiet shard by our pongs (docs/rollout.md, quiet shard).
        idle_s = quiet_shard_ping_s(rollout.failover)
        config = dataclasses.replace(
            config, session=dataclasses.replace(config.session, idle_ping_s=idle_s)
        )
    return config
