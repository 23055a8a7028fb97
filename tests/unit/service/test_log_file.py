"""`--log-file` (issue 18 item 4): a second handler, mode 0600, rotated by size, redacted."""

from __future__ import annotations

import logging
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from bybit_hybrid.errors import ConfigError
from bybit_hybrid.service.logs import REDACTOR, configure_logging


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)


def test_the_log_file_gets_every_record_redacted_and_private(tmp_path: Path) -> None:
    path = tmp_path / "run.log"
    REDACTOR.add_secret("TOPSECRETVALUE42")
    configure_logging("INFO", "console", str(path))
    logging.getLogger("bybit_hybrid.test").warning("secret is TOPSECRETVALUE42")
    for handler in logging.getLogger().handlers:
        handler.flush()
    text = path.read_text()
    assert "WARNING bybit_hybrid.test: secret is ***" in text
    assert "TOPSECRETVALUE42" not in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_it_rotates_by_size_and_keeps_the_backups_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BYBIT_HYBRID_LOG_FILE_MAX_BYTES", "2048")
    monkeypatch.setenv("BYBIT_HYBRID_LOG_FILE_BACKUPS", "2")
    path = tmp_path / "run.log"
    configure_logging("INFO", "json", str(path))
    log = logging.getLogger("bybit_hybrid.test")
    for i in range(200):
        log.info("line %d %s", i, "x" * 40)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["run.log", "run.log.1", "run.log.2"]
    for name in files:
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600
        assert (tmp_path / name).stat().st_size <= 2048
    assert '"msg": "line 199' in path.read_text()


def test_a_bad_place_or_size_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ConfigError, match=r"--log-file .*nowhere"):
        configure_logging("INFO", "console", str(tmp_path / "nowhere" / "run.log"))
    monkeypatch.setenv("BYBIT_HYBRID_LOG_FILE_MAX_BYTES", "10 MB")
    with pytest.raises(ConfigError, match="BYBIT_HYBRID_LOG_FILE_MAX_BYTES"):
        configure_logging("INFO", "console", str(tmp_path / "run.log"))
