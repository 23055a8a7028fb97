"""Connects to NATS and declares the bus's streams and bucket (idempotent, by every process)."""

from __future__ import annotations

import logging
from typing import Any

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


async def connect(settings: BusSettings, name: str, **callbacks: Any) -> Client:
    """A NATS connection that reconnects forever; the first connect fails fast. `callbacks`
    are nats-py's (`reconnected_cb=...`)."""
    return await nats.connect(name=name, **settings.connect_options(), **callbacks)


def marks_config(settings: BusSettings) -> StreamConfig:
    # One message per subject: the stream is a last-value table a late joiner reads at once.
    return StreamConfig(
        name=MARKS_STREAM,
        subjects=[MARKS_PREFIX + ">"],
        max_msgs_per_subject=1,
        duplicate_window=settings.duplicate_window_s,
        storage=StorageType.FILE,  # a restarted server still has every last mark
        allow_direct=True,
    )


def positions_config(settings: BusSettings) -> StreamConfig:
    return StreamConfig(
        name=POSITIONS_STREAM,
        subjects=[POSITIONS_PREFIX + ">"],
        duplicate_window=settings.duplicate_window_s,
        max_age=POSITIONS_MAX_AGE_S,
        storage=StorageType.FILE,
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
        bucket=DEMAND_BUCKET, ttl=settings.demand_ttl_s, storage=StorageType.FILE
    )
    try:
        return await js.create_key_value(config)
    except BadRequestError:
        return await js.key_value(DEMAND_BUCKET)  # another process created it meanwhile
