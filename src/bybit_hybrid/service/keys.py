"""The account's API key pair, read only from `BYBIT_API_KEY` / `BYBIT_API_SECRET`."""

from __future__ import annotations

import stat
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from bybit_hybrid.errors import ConfigError
from bybit_hybrid.service.logs import REDACTOR


class KeySettings(BaseSettings):
    """The account's API key pair; the secret is a SecretStr and never printed."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    api_key: SecretStr | None = Field(default=None, validation_alias="BYBIT_API_KEY")
    api_secret: SecretStr | None = Field(default=None, validation_alias="BYBIT_API_SECRET")

    def require(self) -> tuple[str, str]:
        """Both keys, or a one-line error naming the missing variables."""
        pairs = (("BYBIT_API_KEY", self.api_key), ("BYBIT_API_SECRET", self.api_secret))
        missing = [name for name, value in pairs if value is None or not value.get_secret_value()]
        if missing:
            raise ConfigError(f"{' and '.join(missing)} must be set (environment or .env)")
        assert self.api_key is not None and self.api_secret is not None
        return self.api_key.get_secret_value(), self.api_secret.get_secret_value()


def check_dotenv_permissions(path: Path = Path(".env")) -> None:
    """Refuses a `.env` holding the API secret that others on the machine can read."""
    try:
        mode = path.stat().st_mode
        holds_secret = "BYBIT_API_SECRET" in path.read_text(errors="replace")
    except OSError:
        return
    if holds_secret and mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"{path} holds BYBIT_API_SECRET but is readable by others "
            f"(mode {stat.S_IMODE(mode):o}); run: chmod 600 {path}"
        )


def load_keys() -> tuple[str, str]:
    """The key pair; both are registered with the log redactor before anyone can log them."""
    check_dotenv_permissions()
    api_key, api_secret = KeySettings().require()
    REDACTOR.add_secret(api_secret)
    REDACTOR.add_secret(api_key)
    return api_key, api_secret
