"""`bybit-hybrid stream` as a user runs it: JSON lines on stdout, one-line errors, exit codes."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bybit_hybrid.sim import SimConfig, SimServer
from tests.integration.cli_support import clean_env, run_cli
from tests.support import CONTRACT_KEYS, UNIT_S


@pytest.fixture
async def sim() -> AsyncIterator[SimServer]:
    async with SimServer(SimConfig(symbols=4, positions=2, seed=5)) as server:
        yield server


async def _run(cwd: Path, env: dict[str, str], *args: str) -> tuple[int, str, str]:
    return await run_cli(cwd, clean_env(**env), *args)


def _keys(sim: SimServer, secret: str | None = None) -> dict[str, str]:
    return {"BYBIT_API_KEY": sim.api_key, "BYBIT_API_SECRET": secret or sim.api_secret}


async def test_json_lines_follow_the_contract(sim: SimServer, tmp_path: Path) -> None:
    code, out, err = await _run(
        tmp_path,
        _keys(sim),
        "stream",
        "--base-url",
        sim.base_url,
        "--json",
        "--duration",
        str(2 * UNIT_S),
        "--log-level",
        "DEBUG",
    )
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert lines, "no events printed"
    for line in lines:
        assert line["event"] == "position_update" and line["exchange"] == "bybit"
        assert set(line["data"]) == CONTRACT_KEYS
        assert isinstance(line["data"]["size"], str)  # decimals as strings
    opened = {(d["symbol"], d["position_idx"]) for d in (x["data"] for x in lines)}
    expected = {(p.symbol, p.idx) for p in sim.exchange.open_positions()}
    assert opened == expected
    assert sim.api_secret not in err  # not even at debug level
    assert not re.search(r"\b[0-9a-f]{64}\b", err)  # nor any signature


async def test_missing_keys_is_one_line_and_exit_2(sim: SimServer, tmp_path: Path) -> None:
    code, out, err = await _run(tmp_path, {}, "stream", "--base-url", sim.base_url)
    assert code == 2 and out == ""
    assert err.strip().splitlines() == [
        "bybit-hybrid: error: BYBIT_API_KEY and BYBIT_API_SECRET must be set (environment or .env)"
    ]


async def test_keys_from_dotenv(sim: SimServer, tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text(f"BYBIT_API_KEY={sim.api_key}\nBYBIT_API_SECRET={sim.api_secret}\n")
    dotenv.chmod(0o644)
    code, _, err = await _run(tmp_path, {}, "stream", "--base-url", sim.base_url)
    assert code == 2 and "readable by others (mode 644); run: chmod 600" in err
    dotenv.chmod(0o600)
    code, out, err = await _run(
        tmp_path, {}, "stream", "--base-url", sim.base_url, "--json", "--duration", str(UNIT_S)
    )
    assert code == 0, err
    assert out.strip()


async def test_rejected_keys_stop_with_one_line(sim: SimServer, tmp_path: Path) -> None:
    code, out, err = await _run(
        tmp_path,
        _keys(sim, "wrong-secret"),
        "stream",
        "--base-url",
        sim.base_url,
        "--log-level",
        "ERROR",
    )
    assert code == 2 and out == ""
    (line,) = err.strip().splitlines()
    assert line.startswith("bybit-hybrid: error: Bybit rejected the API key")
    assert "wrong-secret" not in err


@pytest.mark.parametrize(
    "args",
    [
        ["stream", "--base-url", "http://127.0.0.1:1", "--duration", "-1"],
        ["stream"],
        ["stream", "--base-url", "http://10.9.8.7:80"],
        ["stream", "--testnet", "--max-active-time", "5"],
        ["stream", "--testnet", "--log-level", "LOUD"],
    ],
    ids=["negative-duration", "no-endpoint", "remote-plain-http", "max-active-time", "level"],
)
async def test_bad_flags_exit_2(args: list[str], tmp_path: Path) -> None:
    code, out, err = await _run(tmp_path, {"BYBIT_API_KEY": "k", "BYBIT_API_SECRET": "s"}, *args)
    assert code == 2 and out == ""
    assert "error" in err.strip().splitlines()[-1]
    assert "Traceback" not in err
