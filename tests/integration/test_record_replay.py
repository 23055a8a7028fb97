"""Record a faulty simulator session, replay it, and get exactly the live events back.

The live side is `BybitHybridStream` (and the `stream --record` CLI) against the simulator
with a malformed frame, dropped sockets, REST 5xx answers, and positions opened, changed and
closed (one-way and hedge). The replay side is `transport.recording.replay` (and the `replay`
CLI): no sockets, no clock, only the recording.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import random
import re
import signal
import stat
import sys
from collections.abc import AsyncIterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bybit_hybrid import BybitHybridStream
from bybit_hybrid.protocol.hybrid import PRIVATE, BadFrame, HybridConfig, RestFailed
from bybit_hybrid.protocol.session import SocketDead
from bybit_hybrid.service.commands.replay import position_events
from bybit_hybrid.sim import ConnKind, RestErrorMode, SimServer, Target
from bybit_hybrid.transport.recording import (
    Recorder,
    RecordingCore,
    RecordingError,
    read_records,
    replay,
)
from bybit_hybrid.wire.signing import Credentials
from tests.integration.cli_support import run_cli
from tests.integration.stream_harness import CONFIG, StreamHarness, sim_config
from tests.integration.stream_harness import Recorder as Consumer
from tests.support import UNIT_S, wait_for

D = Decimal
POSITION_LIST = "/v5/position/list"


async def _recorded_stream(sim: SimServer, path: Path) -> tuple[StreamHarness, Recorder]:
    tasks_before = asyncio.all_tasks()
    recorder = Recorder(path)
    consumer = Consumer()
    stream = BybitHybridStream(
        sim.api_key,
        sim.api_secret,
        consumer.handler,
        base_url=sim.base_url,
        config=CONFIG,
        rng=random.Random(7),
        recorder=recorder,
    )
    stream.add_listener(consumer.listener)
    h = StreamHarness(sim, stream, consumer, tasks_before)
    await stream.start()
    await stream.wait_ready(3 * UNIT_S)
    await h.wait_live()
    return h, recorder


async def _faulty_session(h: StreamHarness) -> None:
    """Malformed frames, drops, REST 5xx, and opens/changes/closes in both position modes."""
    sim = h.sim
    assert sim.faults.send_malformed(Target.ALL) == 2
    await wait_for(lambda: len(h.of_type(BadFrame)) == 2, 2 * UNIT_S, "bad frames")
    start = len(h.delivered)
    await sim.open_position("SOLUSDT", "Buy", D("0.5"))
    await h.wait_delivered(lambda d: d["symbol"] == "SOLUSDT", start, what="SOL open")
    await h.prove_marks_flow(["SOLUSDT", "BTCUSDT"])
    # The reconcile after the reconnect fails (5xx past the client's retries), then succeeds.
    sim.faults.rest_errors(RestErrorMode.SERVER_ERROR, count=8, path=POSITION_LIST)
    reconnects = h.stream.get_stats()["reconnections"]
    await sim.faults.drop(Target.ALL)
    await wait_for(lambda: bool(h.of_type(RestFailed)), 4 * UNIT_S, "a failed reconcile")
    await wait_for(
        lambda: h.stream.get_stats()["reconnections"] >= reconnects + 2,
        4 * UNIT_S,
        "both sockets to reconnect",
    )
    await h.wait_live(4 * UNIT_S)
    # A silent public socket is only noticed by the timers (ping, pong timeout): ticks.
    dead = len(h.of_type(SocketDead))
    sim.faults.silence(Target.PUBLIC)
    await wait_for(lambda: len(h.of_type(SocketDead)) > dead, 4 * UNIT_S, "the silent socket")
    await h.wait_live(4 * UNIT_S)
    start = len(h.delivered)
    await sim.close_position("BTCUSDT")
    await h.wait_delivered(
        lambda d: d["symbol"] == "BTCUSDT" and d["status"] == "closed", start, what="BTC close"
    )
    await sim.set_position_mode("XRPUSDT", "hedge")
    start = len(h.delivered)
    await sim.open_position("XRPUSDT", "Buy", D("10"), position_idx=1)
    await sim.open_position("XRPUSDT", "Sell", D("20"), position_idx=2)
    await sim.change_position("SOLUSDT", stop_loss=D("140"))
    await sim.close_position("XRPUSDT", 1)
    await h.wait_delivered(
        lambda d: d["symbol"] == "XRPUSDT" and d["position_idx"] == 1 and d["status"] == "closed",
        start,
        what="XRP/1 close",
    )
    await h.prove_marks_flow(["XRPUSDT"])
    h.assert_in_sync()


@pytest.fixture
async def sim() -> AsyncIterator[SimServer]:
    async with SimServer(sim_config()) as server:
        yield server


async def test_a_faulty_session_replays_to_identical_events(sim: SimServer, tmp_path: Path) -> None:
    path = tmp_path / "session.jsonl.gz"
    h, recorder = await _recorded_stream(sim, path)
    try:
        await _faulty_session(h)
    finally:
        await h.close()
        recorder.close()
    live = position_events([e for _, e in h.core_events])
    kinds = {type(e).__name__ for e in live}
    assert {"PositionOpened", "PositionChanged", "PositionClosed", "MarkUpdated"} <= kinds

    records = list(read_records(path))
    recorded = {r["k"] for r in records}
    assert {"connect", "open", "frame", "close", "tick", "positions", "rest_failed"} <= recorded
    result = replay(records)

    # The same opens, changes, closes and marks, in the same order, with the same values.
    assert position_events(result.events) == live
    # Everything else the core reported matches too (bad frames, REST failures, states).
    assert [type(e).__name__ for e in result.events] == [type(e).__name__ for _, e in h.core_events]
    assert sum(isinstance(e, BadFrame) for e in result.events) == 2
    # The replayed book ends where the live one did.
    assert result.cores[-1].book.views() == h.stream.positions()

    # Replaying is deterministic: twice gives the same answer.
    assert replay(read_records(path)).events == result.events


async def test_the_recording_holds_no_secret_and_is_private(sim: SimServer, tmp_path: Path) -> None:
    path = tmp_path / "session.jsonl.gz"
    h, recorder = await _recorded_stream(sim, path)
    try:
        start = len(h.delivered)
        await sim.open_position("SOLUSDT", "Buy", D("0.5"))
        await h.wait_delivered(lambda d: d["symbol"] == "SOLUSDT", start, what="SOL open")
    finally:
        await h.close()
        recorder.close()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    text = gzip.decompress(path.read_bytes()).decode()
    assert sim.api_secret not in text
    assert sim.api_key not in text
    assert not re.search(r"\b[0-9a-fA-F]{64}\b", text)  # no signature
    records = [json.loads(line) for line in text.splitlines()]
    kinds = {r["k"] for r in records}
    assert {"header", "connect", "open", "frame", "positions", "tickers"} <= kinds
    # Only inbound frames: never the auth request the client sent.
    frames = [json.loads(r["p"]) for r in records if r["k"] == "frame"]
    assert not any(f.get("op") == "auth" and "args" in f for f in frames)
    assert any(f.get("op") == "auth" and f.get("success") for f in frames)  # the answer


def test_a_truncated_recording_replays_up_to_the_cut(tmp_path: Path) -> None:
    """A recorder killed mid-write leaves a gzip stream without its end: read what is there."""
    path = tmp_path / "cut.jsonl.gz"
    recorder = Recorder(path)
    core = RecordingCore(recorder, Credentials("k" * 8, "s" * 8), HybridConfig(), seed=3)
    core.start_connect(PRIVATE, 1.0)
    core.on_open(PRIVATE, 1.1)
    recorder.close()
    lines = gzip.decompress(path.read_bytes())
    cut = gzip.compress(lines)[:-12]  # no trailer, last block possibly partial
    path.write_bytes(cut)
    records = list(read_records(path))
    assert records and records[0]["k"] == "header"
    assert replay(records).cores

    bad = tmp_path / "bad.gz"
    bad.write_bytes(b"not gzip")
    with pytest.raises(RecordingError):
        list(read_records(bad))
    with pytest.raises(RecordingError):
        replay([{"k": "frame", "t": 1.0, "s": PRIVATE, "p": "{}"}])
    with pytest.raises(RecordingError):
        replay([{"k": "header", "v": 99}])


# --- the CLI ----------------------------------------------------------------------------------


def _env(sim: SimServer) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("BYBIT_", "PYTEST"))}
    return {**clean, "BYBIT_API_KEY": sim.api_key, "BYBIT_API_SECRET": sim.api_secret}


def _is_subsequence(short: Sequence[Any], long: Sequence[Any]) -> bool:
    it = iter(long)
    return all(any(item == other for other in it) for item in short)


async def test_stream_record_then_replay_cli(sim: SimServer, tmp_path: Path) -> None:
    path = tmp_path / "cli.jsonl.gz"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bybit_hybrid",
        "stream",
        "--base-url",
        sim.base_url,
        "--json",
        "--record",
        str(path),
        "--duration",
        str(60 * UNIT_S),
        cwd=tmp_path,
        env=_env(sim),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    live: list[str] = []
    assert proc.stdout is not None and proc.stderr is not None

    async def read_until(symbol: str, status: str) -> None:
        assert proc.stdout is not None
        while True:
            line = (await asyncio.wait_for(proc.stdout.readline(), 10 * UNIT_S)).decode()
            assert line, "stream ended early"
            live.append(line.rstrip("\n"))
            data = json.loads(line)["data"]
            if data["symbol"] == symbol and data["status"] == status:
                return

    def private_subscribed() -> bool:
        return any(c.kind is ConnKind.PRIVATE and "position" in c.topics for c in sim.connections)

    try:
        await wait_for(private_subscribed, 10 * UNIT_S, "the CLI's private subscription")
        await read_until("ETHUSDT", "open")  # bootstrapped
        sim.faults.send_malformed(Target.ALL)
        await sim.open_position("SOLUSDT", "Buy", D("0.5"))
        await read_until("SOLUSDT", "open")
        await sim.faults.drop(Target.PRIVATE)
        await sim.close_position("BTCUSDT")  # while down, or just after: either way seen
        await read_until("BTCUSDT", "closed")
    finally:
        proc.send_signal(signal.SIGINT)
        rest, err = await asyncio.wait_for(proc.communicate(), 10 * UNIT_S)
    assert proc.returncode == 0, err.decode()
    live += rest.decode().splitlines()

    code, out, err_text = await run_cli(tmp_path, _env(sim), "replay", str(path), "--json")
    assert code == 0, err_text
    replayed = out.splitlines()
    assert "1 core run(s)" in err_text and "2 bad frame(s)" in err_text
    # Live marks may be conflated for a slow reader, never reordered or invented: the live
    # lines are a subsequence of the replayed ones, and every open/change/close is in both.
    assert _is_subsequence(live, replayed)
    live_keys = {(d["symbol"], d["status"]) for d in (json.loads(x)["data"] for x in live)}
    replay_keys = {(d["symbol"], d["status"]) for d in (json.loads(x)["data"] for x in replayed)}
    assert live_keys == replay_keys
    # The human format works too.
    code, out, _ = await run_cli(tmp_path, _env(sim), "replay", str(path))
    assert code == 0 and "SOLUSDT/0 open" in out


async def test_replay_cli_errors_are_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BYBIT_", "PYTEST"))}
    code, out, err = await run_cli(tmp_path, env, "replay", str(tmp_path / "missing.gz"))
    assert code == 2 and out == "" and "no such recording" in err
    (tmp_path / "bad.gz").write_bytes(b"garbage")
    code, out, err = await run_cli(tmp_path, env, "replay", str(tmp_path / "bad.gz"))
    assert code == 2 and err.startswith("bybit-hybrid: error: cannot replay")
