"""`bybit-hybrid run` on an account with an old position (issue 18 item 2): it logs a plan per
position at start-up and in /status, closes nothing without the opt-in, and `--dry-run` sends
nothing at all. A subprocess against the simulator."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from decimal import ROUND_CEILING, Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bybit_hybrid.sim import EventKind, SimServer
from tests.integration.stream_harness import sim_config
from tests.support import UNIT_S

BTC = "BTCUSDT"


@pytest.fixture
async def sim() -> AsyncIterator[SimServer]:
    async with SimServer(sim_config(positions=0)) as server:
        yield server


async def _status(url: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session, session.get(url + "/status") as response:
        return json.loads(await response.text())  # type: ignore[no-any-return]


@pytest.mark.parametrize("dry_run", [False, True])
async def test_run_on_an_old_position_plans_and_closes_nothing(
    sim: SimServer, tmp_path: Path, dry_run: bool
) -> None:
    sim.pause_ticks(BTC)
    await sim.open_position(BTC, "Buy", Decimal("0.001"))
    await sim.change_position(BTC, open_time_ms=sim.now_ms() - 90 * 60_000)
    entry = sim.exchange.positions[(BTC, 0)].avg_price
    env = {
        **os.environ,
        "BYBIT_API_KEY": sim.api_key,
        "BYBIT_API_SECRET": sim.api_secret,
        "BYBIT_HYBRID_STATE_DB": str(tmp_path / "state.sqlite3"),
        "BYBIT_HYBRID_AGED_MAX_AGE_H": "1",
        "BYBIT_HYBRID_TRAILING_MIN_UPDATE_INTERVAL_S": "0",
    }
    if dry_run:
        env["BYBIT_HYBRID_AGED_CLOSE_EXISTING"] = "true"  # even opted in, a dry run only logs
    flags = ["--dry-run"] if dry_run else []
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bybit_hybrid", "run", "--base-url", sim.base_url,
        "--duration", "60", "--metrics-port", "0", *flags,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env, cwd=tmp_path,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        first = await asyncio.wait_for(proc.stdout.readline(), 10 * UNIT_S)
        match = re.fullmatch(r"metrics on (http://\S+)\n", first.decode())
        assert match, first
        url = match.group(1)
        plans: list[Any] = []

        async def planned() -> bool:
            plans[:] = (await _status(url)).get("protection", {}).get("plan", [])
            return bool(plans)

        for _ in range(int(100 * UNIT_S)):
            if await planned():
                break
            await asyncio.sleep(0.1)
        [plan] = plans
        auth = (await _status(url))["auth"]  # the key's standing (issue 18 item 1)
        assert auth["phase"] == "working" and auth["rejected"] == [], auth
        if dry_run:
            assert plan["aged"]["action"] == "exits" and plan["aged"]["sends"] is False
            assert plan["trail"]["sends"] is False
        else:
            assert plan["aged"]["action"] == "held"
        assert Decimal(plan["trail"]["activation_price"]) == entry * Decimal("1.02")
        # The mark reaches the aged target (break-even + fees), then the trail's activation.
        target = (entry * Decimal("1.0011") / Decimal("0.1")).to_integral_value(ROUND_CEILING)
        await sim.set_prices(BTC, mark=target * Decimal("0.1"), last=entry)
        counters: dict[str, Any] = {}

        async def decided() -> bool:
            counters.update((await _status(url))["protection"]["aged"])
            return bool(counters["monitor_only"] or counters["held_existing"])

        for _ in range(int(100 * UNIT_S)):
            if await decided():
                break
            await asyncio.sleep(0.1)
        assert counters["monitor_only"] or counters["held_existing"], counters
        if dry_run:  # the trail activates too, and still sends nothing
            await sim.set_prices(BTC, mark=entry * Decimal("1.03"), last=entry)
            for _ in range(int(100 * UNIT_S)):
                if (await _status(url))["protection"]["trailing"]["monitor_only"]:
                    break
                await asyncio.sleep(0.1)
            assert (await _status(url))["protection"]["trailing"]["monitor_only"] >= 1
        proc.send_signal(signal.SIGTERM)
        _, err_bytes = await asyncio.wait_for(proc.communicate(), 10 * UNIT_S)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    err = err_bytes.decode()
    assert proc.returncode == 0, err
    assert "protection plan for 1 open positions" in err, err
    assert re.search(
        r"plan: BTCUSDT/0 Buy 0\.001 @ \S+ \(exchange stop none\): trail activates", err
    )
    if dry_run:
        assert "dry run: protection decisions are logged, nothing is sent" in err
        assert "[logged only, nothing sent]" in err
    else:
        assert "held, never closed" in err
    history = sim.exchange.history
    orders = [e for e in history.of_kind(EventKind.ORDER) if e.reason and e.reason.value == "order"]
    assert orders == [] and history.of_kind(EventKind.TRADING_STOP) == []
