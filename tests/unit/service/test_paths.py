"""Where the state lives (issue 18 item 4): the per-user data directory by platform, one file
per endpoint and account, directory 0700 and file 0600."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from bybit_hybrid.errors import ConfigError
from bybit_hybrid.service.paths import data_dir, default_state_db, state_file

HOME = Path("/home/trader")


@pytest.mark.parametrize(
    ("platform", "env", "expected"),
    [
        ("linux", {}, HOME / ".local/share/bybit-hybrid"),
        ("linux", {"XDG_DATA_HOME": "/data"}, Path("/data/bybit-hybrid")),
        ("linux", {"XDG_DATA_HOME": "relative/dir"}, HOME / ".local/share/bybit-hybrid"),
        ("freebsd14", {}, HOME / ".local/share/bybit-hybrid"),
        ("darwin", {"XDG_DATA_HOME": "/data"}, HOME / "Library/Application Support/bybit-hybrid"),
        (
            "win32",
            {"LOCALAPPDATA": "C:/Users/t/AppData/Local"},
            Path("C:/Users/t/AppData/Local/bybit-hybrid"),
        ),
    ],
)
def test_the_data_directory_follows_the_platform(
    platform: str, env: dict[str, str], expected: Path
) -> None:
    assert data_dir(env, platform, HOME) == expected


def test_one_file_per_endpoint_and_account_and_no_key_in_the_name() -> None:
    names = {
        default_state_db(endpoint, key, Path("/d")).name
        for endpoint in ("mainnet", "testnet")
        for key in ("KEYONE0000000001", "KEYTWO0000000002")
    }
    assert len(names) == 4
    assert all(n.startswith("state-") and n.endswith(".sqlite3") for n in names)
    assert not any("KEY" in n for n in names)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_directory_is_0700_and_the_file_0600_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        path = state_file(tmp_path / "data" / "bybit-hybrid" / "state.sqlite3")
    finally:
        os.umask(old)
    assert path.exists() and _mode(path) == 0o600
    assert _mode(path.parent) == 0o700


def test_an_existing_readable_state_file_is_made_private(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    path.write_bytes(b"")
    path.chmod(0o644)
    state_file(path)
    assert _mode(path) == 0o600


def test_an_unusable_place_is_a_config_error_naming_it(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match=r"state_db .*file/state\.sqlite3"):
        state_file(blocker / "state.sqlite3")
