"""SQLite store round-trips exactly and drops gone positions; settings map to parameters."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from bybit_hybrid.errors import ConfigError
from bybit_hybrid.protection.aged import AgedPhase, AgedState
from bybit_hybrid.protection.config import aged_config, trailing_config
from bybit_hybrid.protection.store import ProtectionStore
from bybit_hybrid.protection.trailing import TrailPhase, TrailState
from bybit_hybrid.protocol.domain import PositionKey, Side
from bybit_hybrid.service.settings import load_settings

A = PositionKey("BTCUSDT", 0)
B = PositionKey("ETHUSDT", 2)


def test_store_round_trips_and_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    trail = TrailState(
        Side.SELL,
        Decimal("3200.005"),
        Decimal("0.01"),
        Decimal("3100.10"),
        TrailPhase.TRAILING,
        Decimal("3115.61"),
        opened_at_ms=1_700_000_000_000,
    )
    aged = AgedState(Side.BUY, Decimal("65000.1"), 1_700_000_000_000, AgedPhase.GRACE)
    store = ProtectionStore(path)
    store.save_trail(B, trail)
    store.save_aged(A, aged)
    store.save_trail(A, TrailState(Side.BUY, Decimal("1"), Decimal("0.1"), Decimal("1")))
    store.close()
    again = ProtectionStore(path)
    assert again.load_trails()[B] == trail
    assert again.load_aged() == {A: aged}
    assert again.drop_missing([A]) == [B]
    assert set(again.load_trails()) == {A}
    again.close()


def test_settings_with_overrides_and_monitor_scopes() -> None:
    settings = load_settings(
        overrides={
            "trailing_symbol_overrides": {"BTCUSDT": {"callback_pct": "0.3"}},
            "trailing_monitor_only_symbols": ["ETHUSDT"],
            "aged_max_age_h": 0.5,
        }
    )
    cfg = trailing_config(settings)
    assert cfg.params_for("BTCUSDT").callback_pct == Decimal("0.3")
    assert cfg.params_for("BTCUSDT").activation_pct == Decimal("2.0")
    assert cfg.params_for("XRPUSDT").callback_pct == Decimal("0.5")
    assert cfg.monitor_only.applies("ETHUSDT") and not cfg.monitor_only.applies("BTCUSDT")
    assert aged_config(settings).params.max_age_ms == 1_800_000


def test_unknown_override_key_is_a_one_line_error() -> None:
    settings = load_settings(overrides={"trailing_symbol_overrides": {"BTCUSDT": {"cb": 1}}})
    with pytest.raises(ConfigError, match=r"trailing_symbol_overrides\.BTCUSDT: unknown key 'cb'"):
        trailing_config(settings)


def test_toml_example_of_the_docs(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        "[trailing]\nactivation_pct = 1.5\ncallback_pct = 0.4\n"
        'monitor_only_symbols = ["DOGEUSDT"]\n\n'
        "[trailing.symbol_overrides.BTCUSDT]\nactivation_pct = 1.0\ncallback_pct = 0.3\n\n"
        "[aged]\nmax_age_h = 6\n"
    )
    cfg = trailing_config(load_settings(path))
    assert cfg.params_for("BTCUSDT").callback_pct == Decimal("0.3")
    assert cfg.params_for("ETHUSDT").activation_pct == Decimal("1.5")
    assert cfg.monitor_only.applies("DOGEUSDT")
    assert aged_config(load_settings(path)).params.max_age_ms == 6 * 3_600_000
