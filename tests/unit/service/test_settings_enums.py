"""Enum-like settings are case-insensitive in every source, and stored in their canonical
spelling; a wrong value names the setting and what it accepts (issue 18)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bybit_hybrid.errors import ConfigError
from bybit_hybrid.service.settings import load_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env


@pytest.mark.parametrize(
    ("variable", "given", "field", "canonical"),
    [
        ("BYBIT_HYBRID_LOG_LEVEL", "debug", "log_level", "DEBUG"),
        ("BYBIT_HYBRID_LOG_LEVEL", "Warning", "log_level", "WARNING"),
        ("BYBIT_HYBRID_TRAILING_SL_TRIGGER_BY", "lastprice", "trailing_sl_trigger_by", "LastPrice"),
        (
            "BYBIT_HYBRID_TRAILING_SL_TRIGGER_BY",
            "INDEXPRICE",
            "trailing_sl_trigger_by",
            "IndexPrice",
        ),
        ("BYBIT_HYBRID_MODE", "REST", "mode", "rest"),
        ("BYBIT_HYBRID_LOG_FORMAT", "JSON", "log_format", "json"),
        ("BYBIT_HYBRID_EVENT_LOOP", "AsyncIO", "event_loop", "asyncio"),
    ],
)
def test_environment_values_in_any_case(
    monkeypatch: pytest.MonkeyPatch, variable: str, given: str, field: str, canonical: str
) -> None:
    monkeypatch.setenv(variable, given)
    assert getattr(load_settings(), field) == canonical


def test_toml_and_flags_in_any_case(tmp_path: Path) -> None:
    toml = tmp_path / "s.toml"
    toml.write_text('[trailing]\nsl_trigger_by = "markprice"\n[log]\nlevel = "error"\n')
    settings = load_settings(toml, {"mode": "Canary"})
    assert (settings.trailing_sl_trigger_by, settings.log_level) == ("MarkPrice", "ERROR")
    assert settings.mode == "canary"


def test_a_wrong_value_names_the_setting_and_the_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BYBIT_HYBRID_TRAILING_SL_TRIGGER_BY", "bestprice")
    with pytest.raises(ConfigError) as error:
        load_settings()
    message = str(error.value)
    assert "trailing_sl_trigger_by" in message and "'bestprice'" in message
    assert "MarkPrice" in message and "LastPrice" in message and "IndexPrice" in message
