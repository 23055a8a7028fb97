"""Logging: secrets and signatures are masked in every record; JSON lines are one object each."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from bybit_hybrid.errors import ConfigError
from bybit_hybrid.service.logs import REDACTOR, configure_logging
from bybit_hybrid.wire.signing import Credentials

CANARY = "CANARY-SECRET-0b5e"


class Captured:
    """stderr as pytest captures it (patching sys.stderr in a fixture does not survive setup)."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self._capsys = capsys

    def getvalue(self) -> str:
        return self._capsys.readouterr().err


@pytest.fixture
def captured(capsys: pytest.CaptureFixture[str]) -> Iterator[Captured]:
    yield Captured(capsys)
    logging.getLogger().handlers.clear()


def test_registered_secrets_and_signatures_never_reach_the_output(captured: Captured) -> None:
    configure_logging("DEBUG", "console")
    REDACTOR.add_secret(CANARY)
    signature = Credentials("k", CANARY).ws_auth_signature(1700000000000)
    log = logging.getLogger("bybit_hybrid.test")
    log.debug("auth args %s %s", CANARY, signature)
    try:
        raise ValueError(f"bad {CANARY}")
    except ValueError:
        log.exception("failed with %s", signature)
    text = captured.getvalue()
    assert CANARY not in text and signature not in text
    assert "***" in text and "<signature>" in text
    assert "Traceback" in text  # the traceback survives, redacted


def test_json_format_one_object_per_line(captured: Captured) -> None:
    configure_logging("INFO", "json")
    logging.getLogger("bybit_hybrid.x").info("hello %s", "world")
    logging.getLogger("bybit_hybrid.x").debug("not shown")
    (line,) = captured.getvalue().splitlines()
    record = json.loads(line)
    assert record["msg"] == "hello world" and record["level"] == "info"
    assert record["logger"] == "bybit_hybrid.x"


def test_bad_level_and_format(captured: Captured) -> None:
    with pytest.raises(ConfigError, match="log level 'LOUD'"):
        configure_logging("LOUD", None)
    with pytest.raises(ConfigError, match="log format 'xml'"):
        configure_logging("INFO", "xml")
