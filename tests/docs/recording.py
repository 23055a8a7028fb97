"""Fixtures that docs blocks ask for by name (`<!-- doctest: fixture NAME -->`)."""

from __future__ import annotations

from bybit_hybrid import BybitHybridStream
from bybit_hybrid.protocol.events import PositionClosed
from bybit_hybrid.protocol.hybrid import CoreEvent
from bybit_hybrid.sim import SimServer
from bybit_hybrid.transport.recording import Recorder
from tests.docs.runner import DocContext
from tests.support import UNIT_S, wait_for


async def incident_recording(sim: SimServer, ctx: DocContext) -> None:
    """`tests/fixtures/incident-1234.jsonl.gz` in the block's directory: a recorded session
    in which BTCUSDT is closed (docs/record-replay.md's regression-test example)."""
    path = ctx.cwd / "tests" / "fixtures" / "incident-1234.jsonl.gz"
    path.parent.mkdir(parents=True, exist_ok=True)
    recorder = Recorder(path, secrets=(sim.api_key, sim.api_secret))
    closed: list[CoreEvent] = []
    stream = BybitHybridStream(
        sim.api_key, sim.api_secret, base_url=sim.base_url, recorder=recorder
    )
    stream.add_listener(
        lambda e: (
            closed.append(e)
            if isinstance(e, PositionClosed) and e.view.key.symbol == "BTCUSDT"
            else None
        )
    )
    try:
        await stream.start()
        await stream.wait_ready(10 * UNIT_S)
        await sim.close_position("BTCUSDT", 0)
        await wait_for(lambda: bool(closed), 10 * UNIT_S, "the BTCUSDT close")
    finally:
        await stream.stop()
        recorder.close()
