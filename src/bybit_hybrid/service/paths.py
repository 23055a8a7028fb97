"""Where `run` keeps its state: a per-user data directory by default, private to the user.

Default directory, by platform (or `$BYBIT_HYBRID_STATE_DB` / `state_db` for an explicit file):

    Linux, BSD   $XDG_DATA_HOME/bybit-hybrid, else ~/.local/share/bybit-hybrid
    macOS        ~/Library/Application Support/bybit-hybrid
    Windows      %LOCALAPPDATA%\\bybit-hybrid

The default file is per endpoint and account, `state-<endpoint>-<key id>.sqlite3`, where the key
id is the first 12 hex digits of the API key's SHA-256 (not the key): a testnet run never prunes
a mainnet account's trails, nor one account another's. The directory is made 0700 and the file
0600 (the state names positions, sizes and stops) before SQLite opens it; SQLite gives its
`-wal`/`-shm` files the same mode. Nothing is created until the settings and keys have passed
their checks: the stack calls `state_file` only after both.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
import sys
from collections.abc import Mapping
from pathlib import Path

from bybit_hybrid.errors import ConfigError

log = logging.getLogger(__name__)

APP = "bybit-hybrid"
DIR_MODE = 0o700
FILE_MODE = 0o600


def data_dir(
    env: Mapping[str, str] | None = None, platform: str | None = None, home: Path | None = None
) -> Path:
    """The per-user data directory of this program (not created here)."""
    env = os.environ if env is None else env
    platform = sys.platform if platform is None else platform
    home = Path.home() if home is None else home
    if platform == "win32":
        base = env.get("LOCALAPPDATA") or str(home / "AppData" / "Local")
        return Path(base) / APP
    if platform == "darwin":
        return home / "Library" / "Application Support" / APP
    xdg = env.get("XDG_DATA_HOME", "")
    # The XDG spec: a relative value is invalid and must be ignored.
    base_path = Path(xdg) if xdg and Path(xdg).is_absolute() else home / ".local" / "share"
    return base_path / APP


def default_state_db(endpoint: str, api_key: str, directory: Path | None = None) -> Path:
    key_id = hashlib.sha256(api_key.encode()).hexdigest()[:12]
    return (directory or data_dir()) / f"state-{endpoint}-{key_id}.sqlite3"


def state_file(path: Path) -> Path:
    """Creates the file's directory (0700 when it is ours) and the file itself (0600)."""
    if str(path) == ":memory:":
        return path
    directory = path.parent
    try:
        if not directory.exists():
            directory.mkdir(mode=DIR_MODE, parents=True)
            os.chmod(directory, DIR_MODE)  # mkdir's mode is masked by the umask
        fd = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
        os.close(fd)
        _tighten(path)
    except OSError as exc:
        raise ConfigError(f"state_db {str(path)!r}: {exc.strerror or exc}") from None
    return path


def _tighten(path: Path) -> None:
    """An existing state file others can read is made private, and said so once."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        os.chmod(path, FILE_MODE)
        log.warning("state file %s was mode %o; made it %o", path, mode, FILE_MODE)
