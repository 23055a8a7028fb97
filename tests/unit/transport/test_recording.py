"""`RecordingCore` + `replay` without sockets: round trips of every record kind, binary frames,
cutover decisions, secret scrubbing and restarts (several headers in one file)."""

from __future__ import annotations

import gzip
import inspect
import json
from decimal import Decimal
from pathlib import Path

import pytest

from bybit_hybrid.protocol.domain import Source, TickerUpdate
from bybit_hybrid.protocol.hybrid import PRIVATE, HybridConfig, HybridCore
from bybit_hybrid.service.cli import main
from bybit_hybrid.transport.recording import INPUTS, Recorder, RecordingCore, read_records, replay
from bybit_hybrid.wire.signing import Credentials
from tests.unit.protocol.builders import pos

CREDS = Credentials("KEYCANARY42", "SECRETCANARY42")


def _drive(core: HybridCore) -> list[object]:
    """A scripted session: bootstrap from REST, tickers, a binary frame, a failure, a tick."""
    events: list[object] = []
    core.take_rest_requests()
    core.start_connect(PRIVATE, 10.0)
    core.on_open(PRIVATE, 10.1)
    core.on_positions(
        1,
        [pos(symbol="BTCUSDT", source=Source.REST), pos(symbol="ETHUSDT", source=Source.REST)],
        requested_at=10.0,
        response_ts_ms=10_050,
        now=10.2,
    )
    requests = core.take_rest_requests()
    update = TickerUpdate("BTCUSDT", True, Decimal("105"), None, None, 1, 10_300)
    core.on_tickers(requests[-1].request_id if requests else 0, [update], 10.3)
    core.on_frame(PRIVATE, b"\xff\xfe not json", 10.4)
    core.on_frame(PRIVATE, '{"op":"pong","success":true}', 10.5)
    core.on_rest_failed(99, "boom " + "ab" * 32, 10.6)
    core.tick(40.0)
    core.on_close(PRIVATE, 41.0, "closed by peer (code 1006)")
    events.extend(core.take_events())
    return events


def test_every_record_kind_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl.gz"
    recorder = Recorder(path, secrets=["KEYCANARY42", "SECRETCANARY42"])
    config = HybridConfig(stream_symbol=lambda symbol: symbol == "BTCUSDT")
    live = RecordingCore(recorder, CREDS, config, seed=11)
    live_events = _drive(live)
    # Restart: a second core in the same file.
    live2 = RecordingCore(recorder, CREDS, HybridConfig(), seed=12)
    live_events2 = _drive(live2)
    recorder.close()
    recorder.close()  # idempotent

    text = gzip.decompress(path.read_bytes()).decode()
    assert "SECRETCANARY42" not in text and "KEYCANARY42" not in text
    assert "ab" * 32 not in text  # signature-shaped text masked in errors
    kinds = [json.loads(line)["k"] for line in text.splitlines()]
    assert kinds.count("header") == 2
    assert {"stream_symbol", "frame", "tickers", "rest_failed", "tick", "close"} <= set(kinds)

    result = replay(read_records(path))
    assert len(result.cores) == 2
    # Events of both runs, in order, equal; the cutover decisions held (ETH not streamed).
    replayed = list(result.events)
    assert [repr(e) for e in replayed] == [repr(e) for e in [*live_events, *live_events2]]
    assert result.cores[0].streams("BTCUSDT") and not result.cores[0].streams("ETHUSDT")
    assert result.cores[0].book.views() == live.book.views()
    assert result.cores[0].stats.bad_frames == live.stats.bad_frames
    assert sum(result.cores[0].stats.bad_frames.values()) == 1  # the binary garbage


def test_record_is_refused_in_rest_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BYBIT_API_KEY", "KEYCANARY42")
    monkeypatch.setenv("BYBIT_API_SECRET", "SECRETCANARY42")
    path = tmp_path / "r.gz"
    args = ["stream", "--base-url", "http://127.0.0.1:9", "--mode", "rest", "--record", str(path)]
    assert main(args) == 2
    assert "--record needs the hybrid stream" in capsys.readouterr().err
    assert not path.exists()


def test_a_recording_from_before_the_private_heartbeat_replays_on_the_public_one(
    tmp_path: Path,
) -> None:
    # Recordings made before issue 19 F2 have no private_* session fields: their private
    # socket pinged every 20 s, and the replay must too, or its pong deadlines would differ.
    path = tmp_path / "r.jsonl.gz"
    recorder = Recorder(path, secrets=[])
    RecordingCore(recorder, CREDS, HybridConfig(), seed=1)
    recorder.close()
    (header,) = list(read_records(path))
    assert header["config"]["session"]["private_ping_interval_s"] == 3.0
    old = json.loads(json.dumps(header))
    for name in ("private_ping_interval_s", "private_pong_timeout_s"):
        del old["config"]["session"][name]
    private = replay([old]).cores[0].session(PRIVATE).config
    assert (private.ping_interval_s, private.pong_timeout_s) == (20.0, 10.0)
    current = replay([header]).cores[0].session(PRIVATE).config
    assert (current.ping_interval_s, current.pong_timeout_s) == (3.0, 2.0)


def test_a_confirmation_round_trips(tmp_path: Path) -> None:
    # A listing misses ETH; the core asks position/list?symbol=ETHUSDT, whose flat row closes
    # it (issue 19 F1). The replay matches the answer to the same request and closes it too.
    path = tmp_path / "r.jsonl.gz"
    recorder = Recorder(path, secrets=[])
    live = RecordingCore(recorder, CREDS, HybridConfig(), seed=3)
    (bootstrap,) = live.take_rest_requests()
    rows = [pos(symbol="BTCUSDT", source=Source.REST), pos(symbol="ETHUSDT", source=Source.REST)]
    live.on_positions(bootstrap.request_id, rows, requested_at=1.0, response_ts_ms=1, now=1.1)
    live.take_rest_requests()
    live.on_positions(0, rows[:1], requested_at=2.0, response_ts_ms=2, now=2.1, reason="poll")
    (confirm,) = live.take_rest_requests()
    flat = pos(symbol="ETHUSDT", size="0", seq=11, source=Source.REST)
    live.on_positions(confirm.request_id, [flat], requested_at=2.2, response_ts_ms=3, now=2.3)
    live_events = live.take_events()
    recorder.close()
    assert "ETHUSDT" not in {key.symbol for key in live.book.open_keys()}
    result = replay(read_records(path))
    assert [repr(e) for e in result.events] == [repr(e) for e in live_events]


def test_every_core_input_is_recorded_through_the_one_table() -> None:
    # From the rule: whatever the core takes from outside with a `now` (a connect, a socket's
    # open, frame or close, a timer, a REST answer or failure) is an input and must be
    # recorded; RecordingCore declares none of their signatures itself.
    inputs = {
        name
        for name, member in inspect.getmembers(HybridCore, inspect.isfunction)
        if (name.startswith("on_") or name in {"start_connect", "tick"})
        and "now" in inspect.signature(member).parameters
    }
    assert inputs == {spec.method for spec in INPUTS}
    for name in inputs:
        wrapped = getattr(RecordingCore, name)
        assert "def " + name not in inspect.getsource(RecordingCore)
        assert inspect.signature(wrapped) == inspect.signature(getattr(HybridCore, name))
