"""Console logs: rich on a terminal, plain otherwise, JSON on request; redaction on every one."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from rich.logging import RichHandler

from bybit_hybrid.service.logs import REDACTOR, configure_logging

CANARY = "CANARYconsole0123456789"
SIGNATURE = "ab" * 32


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    REDACTOR.add_secret(CANARY)
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def _log_canary() -> None:
    log = logging.getLogger("bybit_hybrid.test")
    log.debug("secret %s sig %s", CANARY, SIGNATURE)
    try:
        raise ValueError(f"boom {CANARY}")
    except ValueError:
        log.exception("failed with %s", CANARY)


@pytest.mark.parametrize(
    ("stream", "fmt", "rich"),
    [
        (_Terminal(), "console", True),
        (io.StringIO(), "console", False),
        (_Terminal(), "json", False),
    ],
)
def test_every_format_redacts_at_debug(
    monkeypatch: pytest.MonkeyPatch, stream: io.StringIO, fmt: str, rich: bool
) -> None:
    monkeypatch.setattr("sys.stderr", stream)
    configure_logging("DEBUG", fmt)
    (handler,) = logging.getLogger().handlers
    assert isinstance(handler, RichHandler) is rich
    assert REDACTOR in handler.filters
    _log_canary()
    text = stream.getvalue()
    assert "secret ***" in text and "boom ***" in text
    assert CANARY not in text and SIGNATURE not in text
    if fmt == "json":
        assert [json.loads(line)["level"] for line in text.splitlines()] == ["debug", "error"]
