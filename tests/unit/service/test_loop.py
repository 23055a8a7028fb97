"""run_loop: asyncio, uvloop, auto's silent fallback, and the one-line error without uvloop."""

from __future__ import annotations

import asyncio
import inspect
import logging
import sys
from pathlib import Path

import pytest

from bybit_hybrid.errors import ConfigError
from bybit_hybrid.service.cli import main
from bybit_hybrid.service.loop import choose_loop, run_loop

LOGGER = "bybit_hybrid.service.loop"
MISSING = "event_loop is uvloop but uvloop is not installed: pip install 'bybit-hybrid[uvloop]'"


async def _loop_package() -> str:
    """The top package of the running loop's class: `asyncio` or `uvloop`."""
    return type(asyncio.get_running_loop()).__module__.split(".")[0]


@pytest.fixture
def no_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    """`import uvloop` raises ImportError, as on Windows or without the extra."""
    monkeypatch.setitem(sys.modules, "uvloop", None)


def test_asyncio_runs_on_the_standard_loop_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    assert run_loop(_loop_package(), "asyncio") == "asyncio"
    assert [r.getMessage() for r in caplog.records if r.name == LOGGER] == ["event loop: asyncio"]


def test_uvloop_runs_on_uvloop_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    pytest.importorskip("uvloop")
    caplog.set_level(logging.INFO, logger=LOGGER)
    assert run_loop(_loop_package(), "uvloop") == "uvloop"
    assert [r.getMessage() for r in caplog.records if r.name == LOGGER] == ["event loop: uvloop"]


def test_auto_prefers_uvloop_when_installed() -> None:
    pytest.importorskip("uvloop")
    assert choose_loop("auto") == "uvloop"
    assert run_loop(_loop_package(), "auto") == "uvloop"


@pytest.mark.usefixtures("no_uvloop")
def test_auto_falls_back_to_asyncio_silently_without_uvloop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    assert choose_loop("auto") == "asyncio"
    assert run_loop(_loop_package(), "auto") == "asyncio"
    assert [r.getMessage() for r in caplog.records if r.name == LOGGER] == ["event loop: asyncio"]


@pytest.mark.usefixtures("no_uvloop")
def test_uvloop_without_uvloop_is_a_config_error_and_closes_the_coroutine() -> None:
    main_coro = _loop_package()
    with pytest.raises(ConfigError) as info:
        run_loop(main_coro, "uvloop")
    assert str(info.value) == MISSING
    # Closed, not left to warn "coroutine was never awaited" at collection.
    assert inspect.getcoroutinestate(main_coro) == inspect.CORO_CLOSED


def test_an_unknown_choice_is_a_config_error() -> None:
    main_coro = _loop_package()
    with pytest.raises(ConfigError, match="event_loop 'tokio' is not one of auto, asyncio"):
        run_loop(main_coro, "tokio")
    assert inspect.getcoroutinestate(main_coro) == inspect.CORO_CLOSED


@pytest.mark.usefixtures("no_uvloop")
def test_demo_loop_uvloop_without_uvloop_exits_2_with_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.delenv("BYBIT_HYBRID_EVENT_LOOP", raising=False)
    assert main(["demo", "--duration", "1", "--loop", "uvloop"]) == 2
    captured = capsys.readouterr()
    assert captured.err.strip().splitlines() == [f"bybit-hybrid: error: {MISSING}"]
    assert "simulator on" not in captured.out  # refused before anything started
