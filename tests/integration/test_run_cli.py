"""`bybit-hybrid run` as a subprocess against the simulator: it trails, persists, stops cleanly."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from bybit_hybrid.protection.store import ProtectionStore
from bybit_hybrid.protocol.domain import PositionKey
from bybit_hybrid.sim import EventKind, SimServer
from tests.integration.stream_harness import sim_config
from tests.support import UNIT_S, wait_for


@pytest.fixture
async def sim() -> AsyncIterator[SimServer]:
    async with SimServer(sim_config(positions=0)) as server:
        yield server


async def test_run_trails_a_position_and_keeps_its_state(sim: SimServer, tmp_path: Path) -> None:
    sim.pause_ticks("BTCUSDT")
    await sim.open_position("BTCUSDT", "Buy", Decimal("0.001"))
    entry = sim.exchange.positions[("BTCUSDT", 0)].avg_price
    db = tmp_path / "state.sqlite3"
    env = {
        **os.environ,
        "BYBIT_API_KEY": sim.api_key,
        "BYBIT_API_SECRET": sim.api_secret,
        "BYBIT_HYBRID_STATE_DB": str(db),
        "BYBIT_HYBRID_TRAILING_ACTIVATION_PCT": "1.0",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bybit_hybrid", "run", "--base-url", sim.base_url,
        "--duration", "60",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env, cwd=tmp_path,
    )  # fmt: skip
    try:
        await wait_for(
            lambda: any("tickers.BTCUSDT" in c.topics for c in sim.connections),
            10 * UNIT_S,
            "run to subscribe the BTC ticker",
        )
        await sim.set_prices("BTCUSDT", mark=entry * Decimal("1.011"), last=entry)
        await wait_for(
            lambda: bool(sim.exchange.history.of_kind(EventKind.TRADING_STOP)),
            5 * UNIT_S,
            "the first stop",
        )
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 10 * UNIT_S)
        assert proc.returncode == 0, err.decode()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert "stops sent" in err.decode()
    assert sim.api_secret not in err.decode()
    store = ProtectionStore(db)
    trail = store.load_trails()[PositionKey("BTCUSDT", 0)]
    store.close()
    assert trail.is_active and trail.stop_price is not None
