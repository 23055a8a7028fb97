"""`bybit-hybrid demo --duration S` piped: plain summaries, a final summary, exit 0; on uvloop."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from tests.support import UNIT_S


async def _demo(tmp_path: Path, *flags: str) -> tuple[int, str, str]:
    """Runs `bybit-hybrid demo --symbols 4 FLAGS` piped in `tmp_path`: (exit code, out, err)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bybit_hybrid", "demo", "--symbols", "4", *flags,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=tmp_path,
        env={**os.environ, "BYBIT_HYBRID_STATE_DB": str(tmp_path / "ignored.sqlite3")},
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 30 * UNIT_S)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_demo_with_duration_prints_summaries_and_exits_0(tmp_path: Path) -> None:
    code, text, err = await _demo(tmp_path, "--duration", "3")
    assert code == 0, err
    lines = text.splitlines()
    assert lines[0].startswith("simulator on http://127.0.0.1:")
    # Piped: no terminal codes, only plain summaries (a periodic one and the final one).
    assert "\x1b[" not in text
    summaries = [line for line in lines if line.startswith("-- ")]
    assert len(summaries) >= 2
    assert "mode=hybrid" in summaries[-1]
    assert "socket private live" in text
    assert " Buy " in text or " Sell " in text  # positions listed with their side
    assert lines[-1].startswith("done: ")
    # The demo keeps its protection state in a temporary file, never in the working dir.
    assert not await asyncio.to_thread(lambda: list(tmp_path.iterdir()))


async def test_demo_runs_the_whole_stack_on_uvloop(tmp_path: Path) -> None:
    pytest.importorskip("uvloop")
    code, out, err = await _demo(tmp_path, "--duration", "1", "--loop", "uvloop")
    assert code == 0, err
    chosen = [line for line in err.splitlines() if "event loop:" in line]
    assert len(chosen) == 1 and chosen[0].endswith("event loop: uvloop"), chosen
    assert out.splitlines()[-1].startswith("done: ")
