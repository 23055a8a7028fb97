"""`bybit-hybrid sim` as a subprocess: first line, demo credentials, REST reachable, clean stop."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from dataclasses import dataclass

import aiohttp

from tests.integration.sim_support import signed_get
from tests.support import UNIT_S


@dataclass(frozen=True)
class _Target:
    base_url: str
    api_key: str
    api_secret: str


async def _spawn(*flags: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bybit_hybrid", "sim", *flags,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def test_cli_serves_until_sigterm() -> None:
    proc = await _spawn("--port", "0", "--positions", "3", "--symbols", "5", "--duration", "60")
    try:
        assert proc.stdout is not None
        first = (await asyncio.wait_for(proc.stdout.readline(), 10 * UNIT_S)).decode()
        match = re.fullmatch(r"listening on (http://127\.0\.0\.1:(\d+))\n", first)
        assert match, first
        creds = (await asyncio.wait_for(proc.stdout.readline(), 5 * UNIT_S)).decode()
        key, secret = re.findall(r"api key: (\S+)\s+api secret: (\S+)", creds)[0]
        base_url = match[1]
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{base_url}/v5/market/time") as resp:
                assert (await resp.json())["retCode"] == 0
            target = _Target(base_url, key, secret)
            _, body = await signed_get(
                session, target, "/v5/position/list", "category=linear&settleCoin=USDT"
            )
        assert body["retCode"] == 0
        assert len(body["result"]["list"]) == 3
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10 * UNIT_S) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_cli_duration_and_bad_flags() -> None:
    proc = await _spawn("--duration", "0.2", "--rate", "5")
    out, _ = await asyncio.wait_for(proc.communicate(), 15 * UNIT_S)
    assert proc.returncode == 0
    assert out.decode().startswith("listening on http://127.0.0.1:")
    bad = (
        ("--rate", "0"),
        ("--symbols", "x"),
        ("--scenario", "nope"),
        ("--api-key", "k"),
        ("--tick-slices", "0"),
        ("--rate", "100", "--tick-slices", "101"),
    )
    for flags in bad:
        proc = await _spawn(*flags)
        out, err = await asyncio.wait_for(proc.communicate(), 15 * UNIT_S)
        assert proc.returncode == 2, flags
        assert out == b""
        lines = err.decode().strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("bybit-hybrid: error: --"), lines
