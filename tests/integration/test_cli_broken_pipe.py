"""A reader that goes away (`bybit-hybrid replay FILE | head`) ends a command quietly: no
BrokenPipeError traceback, no "Exception ignored" line, exit code 0 (issue 18)."""

from __future__ import annotations

import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from bybit_hybrid.protocol.domain import PositionKey, PositionSnapshot, Side, Source
from bybit_hybrid.protocol.hybrid import HybridConfig
from bybit_hybrid.transport.recording import Recorder, RecordingCore
from bybit_hybrid.wire.signing import Credentials
from tests.support import UNIT_S


def _recording(path: Path, positions: int = 50) -> Path:
    recorder = Recorder(path)
    core = RecordingCore(recorder, Credentials("k" * 8, "s" * 8), HybridConfig(), seed=3)
    rows = [
        PositionSnapshot(
            key=PositionKey(f"SYM{n}USDT", 0),
            side=Side.BUY,
            size=Decimal("1"),
            entry_price=Decimal("100"),
            mark_price=Decimal("101"),
            leverage=Decimal("10"),
            unrealised_pnl=Decimal("1"),
            cum_realised_pnl=None,
            stop_loss=None,
            take_profit=None,
            trailing_stop=None,
            liq_price=None,
            position_status="Normal",
            seq=n + 1,
            created_time_ms=1_000,
            updated_time_ms=1_000,
            open_time_ms=1_000,
            source=Source.REST,
            exchange_ts_ms=1_000,
        )
        for n in range(positions)
    ]
    core.on_positions(0, rows, requested_at=1.0, response_ts_ms=1_000, now=1.0, reason="bootstrap")
    recorder.close()
    return path


def _run_into_closed_pipe(*argv: str, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    """Runs the CLI with stdout a pipe whose reader is already gone."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(
            [sys.executable, "-m", "bybit_hybrid", *argv],
            stdout=write_end,
            stderr=subprocess.PIPE,
            cwd=cwd,
            timeout=60 * UNIT_S,
            check=False,
        )
    finally:
        os.close(write_end)


@pytest.mark.parametrize(
    "argv",
    [
        ("replay", "{rec}"),
        ("replay", "--json", "{rec}"),
        ("config", "docs"),
        ("config", "show"),
        ("demo", "--duration", "1"),
    ],
    ids=" ".join,
)
def test_a_closed_pipe_ends_the_command_quietly(tmp_path: Path, argv: tuple[str, ...]) -> None:
    rec = _recording(tmp_path / "r.jsonl.gz")
    done = _run_into_closed_pipe(*(a.format(rec=rec) for a in argv), cwd=tmp_path)
    stderr = done.stderr.decode()
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr, stderr
    assert "Exception ignored" not in stderr, stderr
    assert done.returncode == 0, stderr
