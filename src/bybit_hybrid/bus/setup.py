"""Connects to NATS and declares the bus's streams and bucket (idempotent, by every process)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import nats
from nats.aio.client import Client
from nats.js.api import KeyValueConfig, StorageType, StreamConfig
from nats.js.client import JetStreamContext
from nats.js.errors import BadRequestError, BucketNotFoundError, NotFoundError
from nats.js.kv import KeyValue

from bybit_hybrid.bus.settings import BusSettings
from bybit_hybrid.bus.subjects import (
    DEMAND_BUCKET,
    MARKS_PREFIX,
    MARKS_STREAM,
    POSITIONS_PREFIX,
    POSITIONS_STREAM,
)

log = logging.getLogger(__name__)

# Position events are kept this long for replay (a consumer down longer re-reads the book).
POSITIONS_MAX_AGE_S = 7 * 24 * 3600.0


async def connect(
    settings: BusSettings,
    name: str,
    reconnected_cb: Callable[[], Awaitable[None]] | None = None,
) -> Client:
    """A NATS connection that reconnects forever; the first connect fails fast. Connection
    trouble is one warning per outage (nats-py would log a traceback per attempt)."""
    noise = _ConnectionLog(settings.masked(), reconnected_cb)
    # nats-py retries a first connect forever when reconnects are unlimited: bound it, so a
    # worker without a bus falls back instead of waiting.
    first_s = settings.connect_timeout_s * (len(settings.servers()) + 1)
    async with asyncio.timeout(first_s):
        client = await nats.connect(
            name=name,
            error_cb=noise.on_error,
            disconnected_cb=noise.on_disconnected,
            reconnected_cb=noise.on_reconnected,
            **settings.connect_options(),
        )
    noise.down = False
    noise.client = client
    return client


class _ConnectionLog:
    def __init__(self, where: str, then: Callable[[], Awaitable[None]] | None) -> None:
        self._where = where
        self._then = then
        # Until the first connect succeeds its caller reports the failure.
        self.down = True
        self.client: Client | None = None

    async def on_error(self, exc: Exception) -> None:
        log.log(logging.DEBUG if self.down else logging.WARNING, "bus %s: %r", self._where, exc)

    async def on_disconnected(self) -> None:
        if self.client is not None and self.client.is_closed:
            return  # our own close at stop, not an outage
        if not self.down:
            log.warning("bus %s: disconnected, reconnecting", self._where)
        self.down = True

    async def on_reconnected(self) -> None:
        self.down = False
        log.info("bus %s: reconnected", self._where)
        if self._then is not None:
            await self._then()


def marks_config(settings: BusSettings) -> StreamConfig:
    # One message per subject: the stream is a last-value table a late joiner reads at once.
    return StreamConfig(
        name=MARKS_STREAM,
        subjects=[MARKS_PREFIX + ">"],
        max_msgs_per_subject=1,
        duplicate_window=settings.duplicate_window_s,
        storage=StorageType.FILE,  # a restarted server still has every last mark
        allow_direct=True,
        num_replicas=settings.replicas,
    )


def positions_config(settings: BusSettings) -> StreamConfig:
    return StreamConfig(
        name=POSITIONS_STREAM,
        subjects=[POSITIONS_PREFIX + ">"],
        duplicate_window=settings.duplicate_window_s,
        max_age=POSITIONS_MAX_AGE_S,
        storage=StorageType.FILE,
        num_replicas=settings.replicas,
    )


async def declare_all(js: JetStreamContext, settings: BusSettings) -> KeyValue:
    """Both streams and the demand bucket; again after a reconnect (the server may be new)."""
    await ensure_stream(js, marks_config(settings))
    await ensure_stream(js, positions_config(settings))
    return await ensure_demand_bucket(js, settings)


async def ensure_stream(js: JetStreamContext, config: StreamConfig) -> None:
    try:
        await js.add_stream(config)
    except BadRequestError:
        # It exists with other settings (an older deployment): bring it to ours.
        log.info("bus: updating stream %s to this version's settings", config.name)
        await js.update_stream(config)


async def ensure_demand_bucket(js: JetStreamContext, settings: BusSettings) -> KeyValue:
    try:
        return await js.key_value(DEMAND_BUCKET)
    except (BucketNotFoundError, NotFoundError):
        pass
    config = KeyValueConfig(
        bucket=DEMAND_BUCKET,
        ttl=settings.demand_ttl_s,
        storage=StorageType.FILE,
        replicas=settings.replicas,
    )
    try:
        return await js.create_key_value(config)
    except BadRequestError:
        return await js.key_value(DEMAND_BUCKET)  # another process created it meanwhile
