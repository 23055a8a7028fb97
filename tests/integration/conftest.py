"""Integration fixtures: the simulator, a started stream, a guard on the loop's error handler."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bybit_hybrid.sim import SimServer
from bybit_hybrid.transport.ws import WsBackendName
from tests.integration.bus_harness import BusRig
from tests.integration.nats_support import NatsServer
from tests.integration.stream_harness import (
    StreamHarness,
    sim_config,
    start_stream,
    use_ws_backend,
)


@pytest.fixture
def ws_backend_name() -> Iterator[WsBackendName]:
    """The default backend; a module runs over both by overriding this fixture with
    one with `params=WS_BACKENDS` (see test_stream_basics.py)."""
    yield from use_ws_backend("picows")


@pytest.fixture(autouse=True)
async def loop_errors() -> AsyncIterator[list[dict[str, Any]]]:
    """Fails the test if anything reached the event loop's exception handler.

    That is where "Task exception was never retrieved", exceptions in callbacks and
    unclosed-transport errors end up; they never fail a test by themselves.
    """
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    try:
        yield errors
        gc.collect()  # a dropped task reports its unretrieved exception when collected
        await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(previous)
    assert not errors, f"the event loop's exception handler was called: {errors}"


@pytest.fixture
async def sim() -> AsyncIterator[SimServer]:
    async with SimServer(sim_config()) as server:
        yield server


@pytest.fixture
async def h(sim: SimServer, ws_backend_name: WsBackendName) -> AsyncIterator[StreamHarness]:
    """A stream bootstrapped and LIVE against `sim`; closing it checks the common invariants."""
    harness = await start_stream(sim)
    try:
        yield harness
    finally:
        await harness.close()


@pytest.fixture
async def nats_server(tmp_path: Path) -> AsyncIterator[NatsServer]:
    """A real `nats-server -js` on 127.0.0.1 with a free port, killed at teardown."""
    server = NatsServer(tmp_path / "nats")
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def rig(sim: SimServer, nats_server: NatsServer) -> AsyncIterator[BusRig]:
    """Hubs and account workers on a real nats-server, all stopped at teardown."""
    bus_rig = BusRig(sim, nats_server)
    try:
        yield bus_rig
    finally:
        await bus_rig.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain aiohttp client session, for raw requests to the simulator."""
    async with aiohttp.ClientSession() as client:
        yield client
