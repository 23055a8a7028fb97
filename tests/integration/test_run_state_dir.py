"""`run`'s state and log files (issue 18 item 4): by default in the per-user data directory (not
the working directory), directory 0700 and file 0600; nothing created by a run that fails its
config check; `--log-file` writes a private, rotated file. Subprocesses against the simulator."""

from __future__ import annotations

import asyncio
import os
import stat
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bybit_hybrid.sim import SimServer
from tests.integration.stream_harness import sim_config
from tests.support import UNIT_S


@pytest.fixture
async def sim() -> AsyncIterator[SimServer]:
    async with SimServer(sim_config(positions=1)) as server:
        yield server


def _env(sim: SimServer, home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BYBIT_HYBRID_")}
    env.pop("XDG_DATA_HOME", None)
    env.update(
        HOME=str(home),
        BYBIT_API_KEY=sim.api_key,
        BYBIT_API_SECRET=sim.api_secret,
        **extra,
    )
    return env


async def _run(sim: SimServer, env: dict[str, str], cwd: Path, *flags: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bybit_hybrid", "run", "--base-url", sim.base_url,
        "--duration", str(2 * UNIT_S), *flags,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env, cwd=cwd,
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), 20 * UNIT_S)
    assert proc.returncode is not None
    return proc.returncode, err.decode()


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_state_goes_to_the_user_data_directory_privately(
    sim: SimServer, tmp_path: Path
) -> None:
    home, cwd = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    cwd.mkdir()
    code, err = await _run(sim, _env(sim, home), cwd, "--log-file", str(tmp_path / "run.log"))
    assert code == 0, err
    assert list(cwd.iterdir()) == [], "run wrote into the working directory"
    directory = home / ".local" / "share" / "bybit-hybrid"
    [state] = [p for p in directory.iterdir() if p.suffix == ".sqlite3"]
    assert state.name.startswith("state-custom-")
    assert _mode(directory) == 0o700
    assert all(_mode(p) == 0o600 for p in directory.iterdir()), [
        (p.name, oct(_mode(p))) for p in directory.iterdir()
    ]
    assert f"state in {state}" in err
    log = tmp_path / "run.log"
    assert _mode(log) == 0o600
    text = log.read_text()
    assert "endpoint custom" in text and sim.api_secret not in text


async def test_xdg_data_home_is_honoured(sim: SimServer, tmp_path: Path) -> None:
    env = _env(sim, tmp_path / "home", XDG_DATA_HOME=str(tmp_path / "xdg"))
    code, err = await _run(sim, env, tmp_path)
    assert code == 0, err
    assert any((tmp_path / "xdg" / "bybit-hybrid").glob("state-custom-*.sqlite3"))


async def test_a_run_that_fails_its_config_check_creates_no_state(
    sim: SimServer, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = _env(sim, home, BYBIT_HYBRID_TRAILING_ACTIVATION_PCT="-1")
    code, err = await _run(sim, env, tmp_path)
    assert code == 2, err
    assert "trailing_activation_pct" in err
    assert os.listdir(home) == [] and os.listdir(tmp_path) == ["home"]
