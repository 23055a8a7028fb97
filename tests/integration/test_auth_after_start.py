"""A rejected key on a LATER private reconnect is a fault, not the end (issue 18 item 1).

`run` and `stream` as subprocesses against the simulator: a key rejected at start-up still stops
them at once; a rejection after the key has worked raises the `auth_rejected` alert, keeps the
protection running (a trailing stop still moves, on the public marks and REST), clears when the
key works again, and ends the program only after `auth_failure_exit_s`, with a one-line reason.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from bybit_hybrid.sim import ConnKind, EventKind, SimServer, Target
from bybit_hybrid.sim.connections import ConnState
from tests.integration.stream_harness import sim_config
from tests.support import UNIT_S, wait_for

COMMANDS = {"run": ["run"], "stream": ["stream", "--json"]}


@pytest.fixture
async def sim() -> AsyncIterator[SimServer]:
    async with SimServer(sim_config(positions=0)) as server:
        yield server


def _env(sim: SimServer, tmp_path: Path, **settings: str) -> dict[str, str]:
    env = {
        **os.environ,
        "BYBIT_API_KEY": sim.api_key,
        "BYBIT_API_SECRET": sim.api_secret,
        "BYBIT_HYBRID_STATE_DB": str(tmp_path / "state.sqlite3"),
        "BYBIT_HYBRID_TRAILING_ACTIVATION_PCT": "1.0",
        "BYBIT_HYBRID_TRAILING_MIN_UPDATE_INTERVAL_S": "0",
    }
    env.update({f"BYBIT_HYBRID_{k.upper()}": v for k, v in settings.items()})
    return env


async def _start(
    sim: SimServer, command: str, env: dict[str, str], cwd: Path
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bybit_hybrid", *COMMANDS[command], "--base-url", sim.base_url,
        "--duration", "60",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env, cwd=cwd,
    )  # fmt: skip


def _private_authed(sim: SimServer) -> bool:
    return any(
        c.kind is ConnKind.PRIVATE and c.state is ConnState.AUTHENTICATED for c in sim.connections
    )


async def _finish(proc: asyncio.subprocess.Process, *, stop: bool) -> str:
    try:
        if stop:
            proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 15 * UNIT_S)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return err.decode()


@pytest.mark.parametrize("command", ["run", "stream"])
async def test_a_later_rejection_is_survived_and_cleared(
    sim: SimServer, tmp_path: Path, command: str
) -> None:
    sim.pause_ticks("BTCUSDT")
    await sim.open_position("BTCUSDT", "Buy", Decimal("0.001"))
    entry = sim.exchange.positions[("BTCUSDT", 0)].avg_price
    proc = await _start(sim, command, _env(sim, tmp_path), tmp_path)
    try:
        await wait_for(lambda: _private_authed(sim), 10 * UNIT_S, "the first private auth")
        sim.faults.reject_auth(count=3)
        await sim.faults.drop(Target.PRIVATE)
        await wait_for(
            lambda: sim.faults.state.reject_auth_count == 0, 15 * UNIT_S, "three rejected re-logins"
        )
        assert proc.returncode is None, "one rejected re-login ended the program"
        if command == "run":  # protection still acts while the private socket is refused
            await sim.set_prices("BTCUSDT", mark=entry * Decimal("1.011"), last=entry)
            await wait_for(
                lambda: bool(sim.exchange.history.of_kind(EventKind.TRADING_STOP)),
                10 * UNIT_S,
                "a trailing stop while the key is being rejected",
            )
        await wait_for(lambda: _private_authed(sim), 20 * UNIT_S, "the key accepted again")
        await asyncio.sleep(0)  # let the child log the clearing before it is stopped
        err = await _finish(proc, stop=True)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err
    assert "alert auth_rejected raised (warning)" in err, err
    assert sim.api_secret not in err


@pytest.mark.parametrize("command", ["run", "stream"])
async def test_a_rejection_that_lasts_ends_the_program_after_the_bound(
    sim: SimServer, tmp_path: Path, command: str
) -> None:
    env = _env(sim, tmp_path, auth_failure_critical_s="1", auth_failure_exit_s=str(3 * UNIT_S))
    proc = await _start(sim, command, env, tmp_path)
    await wait_for(lambda: _private_authed(sim), 10 * UNIT_S, "the first private auth")
    sim.faults.reject_auth(seconds=120)
    await sim.faults.drop(Target.PRIVATE)
    err = await _finish(proc, stop=False)
    assert proc.returncode == 2, err
    assert "alert auth_rejected raised (warning)" in err, err
    assert "alert auth_rejected raised (critical)" in err, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("bybit-hybrid: error: Bybit has rejected the API key for"), last
    assert "giving up" in last and "auth_failure_exit_s" in last, last


@pytest.mark.parametrize("command", ["run", "stream"])
async def test_a_key_rejected_at_start_up_still_stops_at_once(
    sim: SimServer, tmp_path: Path, command: str
) -> None:
    env = _env(sim, tmp_path)
    env["BYBIT_API_SECRET"] = "WRONGSECRET0000000000000001"
    proc = await _start(sim, command, env, tmp_path)
    err = await _finish(proc, stop=False)  # --duration 60: only the rejection ends it early
    assert proc.returncode == 2, err
    assert "rejected the API key at start-up" in err.strip().splitlines()[-1], err
