"""`say`: a line on stdout that never raises when the reader is gone (issue 18)."""

from __future__ import annotations

import os

import pytest

from bybit_hybrid.service.output import say


def test_say_survives_a_closed_pipe(monkeypatch: pytest.MonkeyPatch) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)
    with os.fdopen(write_end, "w") as dead:
        monkeypatch.setattr("sys.stdout", dead)
        assert say("metrics on http://127.0.0.1:1") is False
        assert say("again") is True  # stdout now goes to /dev/null


def test_say_prints_a_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert say("hello") is True
    assert capsys.readouterr().out == "hello\n"
