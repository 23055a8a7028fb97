"""What the logs say about connections (issue 18 item 3): a start-up line naming the endpoint
and mode; with nothing listening, one WARNING per connection then summaries (not a line per
attempt); a dropped socket leaves a WARNING. `stream` as a subprocess."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bybit_hybrid.sim import ConnKind, SimServer, Target
from tests.integration.stream_harness import sim_config
from tests.support import UNIT_S, wait_for


@pytest.fixture
async def sim() -> AsyncIterator[SimServer]:
    async with SimServer(sim_config(positions=1)) as server:
        yield server


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "BYBIT_API_KEY": "SIMDEMOKEY000001", "BYBIT_API_SECRET": "x" * 20}


async def test_nothing_listening_is_one_warning_per_connection_then_summaries(
    tmp_path: Path,
) -> None:
    port = _closed_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bybit_hybrid", "stream", "--base-url", f"http://127.0.0.1:{port}",
        "--duration", str(6 * UNIT_S), "--log-format", "json",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=_env(tmp_path),
        cwd=tmp_path,
    )  # fmt: skip
    _, err_bytes = await asyncio.wait_for(proc.communicate(), 20 * UNIT_S)
    err = err_bytes.decode()
    assert proc.returncode == 0, err
    assert f"endpoint custom: rest 127.0.0.1:{port}, public 127.0.0.1:{port}, private " in err
    assert "; mode hybrid" in err
    # In 6 s each socket retries 3-4 times (0.5, 1, 2 s backoff); each says so once.
    for name in ("private", r"public-\d+"):
        lines = re.findall(rf'"msg": "{name}: connect failed[^"]*"', err)
        assert len(lines) == 1, (name, lines, err)
    rest = re.findall(r'"msg": "rest: [^"]*"', err)
    assert 1 <= len(rest) <= 2, err  # the bootstrap's, and the failover poller's
    assert "retry 1/3" not in err  # the REST client's own retries are DEBUG detail


async def test_a_dropped_socket_leaves_a_warning(sim: SimServer, tmp_path: Path) -> None:
    env = {**_env(tmp_path), "BYBIT_API_KEY": sim.api_key, "BYBIT_API_SECRET": sim.api_secret}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bybit_hybrid", "stream", "--base-url", sim.base_url,
        "--duration", "60", "--log-level", "WARNING",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env, cwd=tmp_path,
    )  # fmt: skip
    try:
        await wait_for(
            lambda: any(c.kind is ConnKind.PUBLIC and c.topics for c in sim.connections),
            10 * UNIT_S,
            "a subscribed public socket",
        )
        first = [c for c in sim.connections if c.kind is ConnKind.PUBLIC]
        await sim.faults.drop(Target.PUBLIC)
        await wait_for(
            lambda: any(
                c.kind is ConnKind.PUBLIC and c not in first and c.topics for c in sim.connections
            ),
            10 * UNIT_S,
            "the public socket back",
        )
        proc.send_signal(signal.SIGTERM)
        _, err_bytes = await asyncio.wait_for(proc.communicate(), 10 * UNIT_S)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    err = err_bytes.decode()
    assert re.search(
        r"WARNING\s+bybit_hybrid\.transport\.runner: public-\d+: socket closed", err
    ), err
