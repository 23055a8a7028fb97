"""Settings: precedence, TOML sections, one-line errors, masked `config show`, docs in sync."""

from __future__ import annotations

import json
from collections.abc import Coroutine
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bybit_hybrid.errors import ConfigError
from bybit_hybrid.rollout.modes import RolloutStream
from bybit_hybrid.service.cli import main
from bybit_hybrid.service.commands import demo, run, stream
from bybit_hybrid.service.commands.config import reference
from bybit_hybrid.service.settings import load_settings
from bybit_hybrid.service.streams import make_position_stream

DOCS = Path(__file__).resolve().parents[3] / "docs" / "configuration.md"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env
    for name in ("BYBIT_API_KEY", "BYBIT_API_SECRET", "BYBIT_HYBRID_EVENT_LOOP"):
        monkeypatch.delenv(name, raising=False)


def test_precedence_defaults_toml_env_flags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    toml = tmp_path / "s.toml"
    toml.write_text(
        'mode = "parallel"\naged_max_age_h = 5\n[trailing]\nactivation_pct = 1.5\n'
        "callback_pct = 0.4\n"
    )
    monkeypatch.setenv("BYBIT_HYBRID_TRAILING_CALLBACK_PCT", "0.3")
    settings = load_settings(toml, {"mode": "rest"})
    assert settings.mode == "rest"  # flag beats file
    assert settings.trailing_activation_pct == Decimal("1.5")  # file beats default
    assert settings.trailing_callback_pct == Decimal("0.3")  # environment beats file
    assert settings.aged_max_age_h == 5
    assert settings.aged_grace_h == 1.0  # default


def test_dotenv_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("BYBIT_HYBRID_MODE=canary\n")
    assert load_settings().mode == "canary"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"BYBIT_HYBRID_TRAILING_ACTIVATION_PCT": "-1"},
            "setting trailing_activation_pct: got '-1', input should be greater than 0",
        ),
        ({"BYBIT_HYBRID_MODE": "yolo"}, "setting mode: got 'yolo', input should be"),
        ({"BYBIT_HYBRID_METRICS_PORT": "99999"}, "setting metrics_port: got '99999'"),
        (
            {"BYBIT_HYBRID_EVENT_LOOP": "tokio"},
            "setting event_loop: got 'tokio', input should be 'auto', 'asyncio' or 'uvloop'",
        ),
        (
            {"BYBIT_HYBRID_REST_POLL_FAST_S": "20"},
            "settings: rest_poll_slow_s must be >= rest_poll",
        ),
    ],
)
def test_invalid_values_name_the_setting(
    env: dict[str, str], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


def test_unknown_and_broken_files(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text("bogus = 1\n")
    with pytest.raises(ConfigError, match="unknown setting 'bogus'"):
        load_settings(tmp_path / "a.toml")
    (tmp_path / "b.toml").write_text("mode = \n")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        load_settings(tmp_path / "b.toml")
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "missing.toml")


def test_config_show_masks_keys(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BYBIT_API_KEY", "KEY123456789")
    monkeypatch.setenv("BYBIT_API_SECRET", "CANARY-SECRET-fa17")
    assert main(["config", "show"]) == 0
    out = capsys.readouterr().out
    shown = json.loads(out)
    assert shown["BYBIT_API_KEY"] == "KEY1…" and shown["BYBIT_API_SECRET"] == "***"
    assert "CANARY-SECRET-fa17" not in out and "KEY123456789" not in out
    assert shown["trailing_activation_pct"] == "2.0"


def test_config_show_bad_value_exits_2_with_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BYBIT_HYBRID_AGED_MAX_AGE_H", "-3")
    assert main(["config", "show"]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        "bybit-hybrid: error: setting aged_max_age_h: got '-3', input should be greater than 0"
    ]


def _fake_run_loop(chosen: list[str]) -> Any:
    """Stands in for `run_loop`: records the choice and never starts the command."""

    def fake(main_coro: Coroutine[Any, Any, int], choice: str) -> int:
        main_coro.close()
        chosen.append(choice)
        return 0

    return fake


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--base-url", "http://127.0.0.1:1"],
        ["stream", "--base-url", "http://127.0.0.1:1"],
        ["demo", "--duration", "1"],
    ],
    ids=lambda argv: argv[0],
)
@pytest.mark.parametrize(
    ("env", "flag", "expected"),
    [
        (None, ["--loop", "uvloop"], "uvloop"),
        ("asyncio", ["--loop", "uvloop"], "uvloop"),  # flag beats environment
        ("uvloop", ["--loop", "asyncio"], "asyncio"),
        ("asyncio", [], "asyncio"),
        (None, [], "auto"),
    ],
)
def test_loop_flag_and_env_reach_the_event_loop_setting(
    argv: list[str],
    env: str | None,
    flag: list[str],
    expected: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BYBIT_API_KEY", "loop-test-key")
    monkeypatch.setenv("BYBIT_API_SECRET", "loop-test-secret")
    if env is not None:
        monkeypatch.setenv("BYBIT_HYBRID_EVENT_LOOP", env)
    chosen: list[str] = []
    for module in (run, stream, demo):
        monkeypatch.setattr(module, "run_loop", _fake_run_loop(chosen))
    assert main([*argv, *flag]) == 0
    assert chosen == [expected]


def test_bad_event_loop_env_exits_2_with_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BYBIT_HYBRID_EVENT_LOOP", "tokio")
    chosen: list[str] = []
    monkeypatch.setattr(demo, "run_loop", _fake_run_loop(chosen))
    assert main(["demo", "--duration", "1"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "bybit-hybrid: error: setting event_loop: got 'tokio', "
        "input should be 'auto', 'asyncio' or 'uvloop'"
    ]
    assert chosen == []


def test_reference_doc_is_generated_from_the_model() -> None:
    assert DOCS.read_text() == reference(), "run: bybit-hybrid config docs > docs/configuration.md"


# --- the private socket's heartbeat (issue 19 F2) as settings --------------------------------


def test_private_heartbeat_settings_from_env_and_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    defaults = load_settings()
    heartbeat = (defaults.rollout_private_ping_interval_s, defaults.rollout_private_pong_timeout_s)
    assert heartbeat == (3.0, 2.0)
    toml = tmp_path / "h.toml"
    toml.write_text("[rollout]\nprivate_ping_interval_s = 6\nprivate_pong_timeout_s = 4\n")
    got = load_settings(toml)
    heartbeat = (got.rollout_private_ping_interval_s, got.rollout_private_pong_timeout_s)
    assert heartbeat == (6.0, 4.0)
    monkeypatch.setenv("BYBIT_HYBRID_ROLLOUT_PRIVATE_PONG_TIMEOUT_S", "1.5")
    assert load_settings(toml).rollout_private_pong_timeout_s == 1.5  # environment beats file


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"BYBIT_HYBRID_ROLLOUT_PRIVATE_PING_INTERVAL_S": "0"},
            "setting rollout_private_ping_interval_s: got '0', input should be greater than 0",
        ),
        (
            {"BYBIT_HYBRID_ROLLOUT_PRIVATE_PONG_TIMEOUT_S": "-1"},
            "setting rollout_private_pong_timeout_s: got '-1', input should be greater than 0",
        ),
        (
            {"BYBIT_HYBRID_ROLLOUT_PRIVATE_PING_INTERVAL_S": "30"},
            "setting rollout_private_ping_interval_s: got '30', input should be less than or "
            "equal to 20",
        ),
        (
            {"BYBIT_HYBRID_ROLLOUT_PRIVATE_PONG_TIMEOUT_S": "3"},
            "settings: rollout_private_pong_timeout_s (3 s) must be below "
            "rollout_private_ping_interval_s (3 s)",
        ),
    ],
)
def test_bad_private_heartbeat_names_the_key(
    env: dict[str, str], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert str(info.value).startswith(message), str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("mode", ["hybrid", "parallel", "cutover"])
def test_the_private_heartbeat_settings_reach_the_private_socket(mode: str) -> None:
    settings = load_settings(
        overrides={
            "mode": mode,
            "rollout_private_ping_interval_s": 1.5,
            "rollout_private_pong_timeout_s": 0.5,
        }
    )
    stream = make_position_stream(settings, "k", "s", None, {"base_url": "http://127.0.0.1:9"})
    assert isinstance(stream, RolloutStream)
    session = stream.hybrid._config.session  # type: ignore[attr-defined]
    assert (session.private_ping_interval_s, session.private_pong_timeout_s) == (1.5, 0.5)
    private = session.for_private()
    assert (private.ping_interval_s, private.pong_timeout_s) == (1.5, 0.5)
    assert (session.ping_interval_s, session.pong_timeout_s) == (20.0, 10.0)  # public: Bybit's
