"""The simulator's control routes take one naming: snake_case fields, as documented in
docs/simulator.md (Bybit's camelCase spellings are accepted as aliases); an unknown, missing or
doubly-given field is a 400 that names it, never silently ignored (issue 18)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import aiohttp
import pytest

from bybit_hybrid.sim import SimConfig, SimServer


@pytest.fixture
async def sim() -> AsyncIterator[SimServer]:
    async with SimServer(SimConfig(symbols=4, positions=0, rate_hz=20, seed=3)) as server:
        server.pause_ticks()
        yield server


async def _post(sim: SimServer, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    url = f"{sim.base_url}{path}"
    async with aiohttp.ClientSession() as session, session.post(url, json=body) as resp:
        return resp.status, await resp.json()


async def _open(sim: SimServer, **extra: Any) -> None:
    body = {"symbol": "SOLUSDT", "side": "Buy", "qty": "1.0", **extra}
    status, reply = await _post(sim, "/sim/position/open", body)
    assert status == 200, reply


async def test_position_change_takes_the_documented_snake_case_keys(sim: SimServer) -> None:
    await _open(sim)
    body = {"symbol": "SOLUSDT", "stop_loss": "120", "take_profit": "200", "open_time_ms": 1000}
    status, reply = await _post(sim, "/sim/position/change", body)
    assert status == 200, reply
    slot = sim.exchange.slot("SOLUSDT", 0)
    assert (slot.stop_loss, slot.take_profit) == (Decimal("120"), Decimal("200"))
    assert slot.open_time_ms == 1000


async def test_bybit_camel_case_spellings_are_aliases(sim: SimServer) -> None:
    await sim.set_position_mode("SOLUSDT", "hedge")
    await _open(sim, positionIdx=1)
    body = {"symbol": "SOLUSDT", "positionIdx": 1, "stopLoss": "121", "takeProfit": "201"}
    status, reply = await _post(sim, "/sim/position/change", body)
    assert status == 200, reply
    slot = sim.exchange.slot("SOLUSDT", 1)
    assert (slot.stop_loss, slot.take_profit) == (Decimal("121"), Decimal("201"))


async def test_trend_and_delay_take_their_documented_keys(sim: SimServer) -> None:
    status, reply = await _post(sim, "/sim/trend", {"symbol": "SOLUSDT", "ticks_per_step": 3})
    assert status == 200, reply
    assert sim.exchange.prices.tickers["SOLUSDT"].trend_ticks == 3
    status, reply = await _post(sim, "/sim/fault/delay", {"delay_ms": 7})
    assert status == 200, reply
    assert sim.faults.state.delay_ms == 7


@pytest.mark.parametrize(
    ("path", "body", "named"),
    [
        ("/sim/position/change", {"symbol": "SOLUSDT", "stoploss": "1"}, "'stoploss'"),
        ("/sim/trend", {"symbol": "SOLUSDT", "tick": 1}, "'tick'"),
        ("/sim/trend", {"symbol": "SOLUSDT"}, "'ticks_per_step'"),
        (
            "/sim/position/change",
            {"symbol": "SOLUSDT", "stop_loss": "1", "stopLoss": "2"},
            "'stop_loss'",
        ),
    ],
)
async def test_unknown_missing_or_doubled_fields_are_named(
    sim: SimServer, path: str, body: dict[str, Any], named: str
) -> None:
    await _open(sim)
    status, reply = await _post(sim, path, body)
    assert status == 400
    assert named in reply["error"], reply
    slot = sim.exchange.slot("SOLUSDT", 0)
    assert slot.stop_loss == 0, "a rejected request changes nothing"
