"""`demo --accounts 3` as a subprocess: nats-server, sim, hub and 3 workers, all stopped after."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys

from tests.support import UNIT_S


async def _spawn(*flags: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bybit_hybrid", "demo", "--accounts", "3", *flags,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


def _pids(first_line: str) -> dict[str, int]:
    found = re.findall(r"([\w-]+) (\d+)(?:,|$)", first_line.partition("processes: ")[2])
    return {name: int(pid) for name, pid in found}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def _read_until(proc: asyncio.subprocess.Process, needle: str, timeout_s: float) -> str:
    """Stdout lines up to the first holding `needle`; fails on EOF or timeout."""
    assert proc.stdout is not None
    seen: list[str] = []
    async with asyncio.timeout(timeout_s):
        while True:
            raw = await proc.stdout.readline()
            assert raw, f"demo ended before {needle!r}: {''.join(seen)}"
            seen.append(raw.decode())
            if needle in seen[-1]:
                return "".join(seen)


async def test_demo_runs_every_piece_as_its_own_process_and_stops_them_all() -> None:
    proc = await _spawn("--duration", "12")
    out, err = await asyncio.wait_for(proc.communicate(), 90 * UNIT_S)
    text = out.decode()
    assert proc.returncode == 0, err.decode()[-2000:]
    pids = _pids(next(ln for ln in text.splitlines() if "processes:" in ln))
    assert set(pids) == {"nats-server", "sim", "hub", "worker-acct1", "worker-acct2",
                         "worker-acct3"}  # fmt: skip
    assert len(set(pids.values())) == 6 and os.getpid() not in pids.values()
    final = text.split("demo stopped")[0].strip().splitlines()[-5:]
    assert "hub up: 1 public socket(s)" in final[0]  # one hub's sockets, not one per account
    assert re.search(r"hub marks: \w+=\d", final[1]), final[1]
    for n, line in enumerate(final[2:], start=1):
        assert line.startswith(f"  acct{n} [up] marks from bus"), line
        assert re.search(r"· [1-9]\d* open", line), line
    assert "exit codes: nats-server 0, sim 0, hub 0, worker-acct1 0" in text
    assert not [name for name, pid in pids.items() if _alive(pid)]


async def test_ctrl_c_stops_every_child() -> None:
    proc = await _spawn("--duration", "600")
    try:
        head = await _read_until(proc, "processes:", 60 * UNIT_S)
        pids = _pids(head.splitlines()[-1])
        await _read_until(proc, "acct3 [up]", 60 * UNIT_S)  # the first summary
        proc.send_signal(signal.SIGINT)
        out, _err = await asyncio.wait_for(proc.communicate(), 60 * UNIT_S)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0
    assert "demo stopped; exit codes:" in out.decode()
    assert not [name for name, pid in pids.items() if _alive(pid)]


async def test_ctrl_c_during_start_up_stops_what_was_started() -> None:
    proc = await _spawn("--duration", "600")
    try:
        head = await _read_until(proc, "started sim", 60 * UNIT_S)
        proc.send_signal(signal.SIGINT)
        out, _err = await asyncio.wait_for(proc.communicate(), 60 * UNIT_S)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    text = head + out.decode()
    started = [int(pid) for pid in re.findall(r"demo: started [\w-]+ \(pid (\d+)\)", text)]
    assert proc.returncode == 0
    assert len(started) >= 2  # nats-server and the simulator at least
    assert "demo stopped; exit codes:" in text
    assert not [pid for pid in started if _alive(pid)]
