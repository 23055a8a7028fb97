"""Settings read from the environment and `.env`: API keys and stream options.

Keys come only from `BYBIT_API_KEY` / `BYBIT_API_SECRET` (environment or `.env`), never from
flags, so they do not end up in shell history or process listings.
"""

from __future__ import annotations

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from bybit_hybrid.errors import ConfigError


class KeySettings(BaseSettings):
    """The account's API key pair; the secret is a SecretStr and never printed."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=False)

    api_key: SecretStr | None = Field(default=None, validation_alias="BYBIT_API_KEY")
    api_secret: SecretStr | None = Field(default=None, validation_alias="BYBIT_API_SECRET")

    def require(self) -> tuple[str, str]:
        """Both keys, or a one-line error naming the missing variables."""
        missing = [
            name
            for name, value in (
                ("BYBIT_API_KEY", self.api_key),
                ("BYBIT_API_SECRET", self.api_secret),
            )
            if value is None or not value.get_secret_value()
        ]
        if missing:
            raise ConfigError(f"{' and '.join(missing)} must be set (environment or .env)")
        assert self.api_key is not None and self.api_secret is not None
        return self.api_key.get_secret_value(), self.api_secret.get_secret_value()


def load_keys() -> tuple[str, str]:
    try:
        return KeySettings().require()
    except ValidationError as exc:  # pragma: no cover - only malformed .env files reach here
        raise ConfigError(f"cannot read keys: {exc.errors()[0]['msg']}") from None
