"""`RecordingCore` + `replay` without sockets: round trips of every record kind, binary frames,
cutover decisions, secret scrubbing and restarts (several headers in one file)."""

from __future__ import annotations

import gzip
import json
from decimal import Decimal
from pathlib import Path

import pytest

from bybit_hybrid.protocol.domain import Source, TickerUpdate
from bybit_hybrid.protocol.hybrid import PRIVATE, HybridConfig, HybridCore
from bybit_hybrid.service.cli import main
from bybit_hybrid.transport.recording import Recorder, RecordingCore, read_records, replay
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
