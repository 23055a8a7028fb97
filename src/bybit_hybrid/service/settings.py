"""The one settings model: defaults < TOML file < `.env` < environment < command-line flags.

Environment names are the field names upper-cased with the `BYBIT_HYBRID_` prefix
(`BYBIT_HYBRID_TRAILING_ACTIVATION_PCT`). A TOML file may use the same flat names or group
them in tables (`[trailing] activation_pct = 2.0` is `trailing_activation_pct`). API keys come
only from `BYBIT_API_KEY` / `BYBIT_API_SECRET` (environment or `.env`), never from flags, so
they do not end up in shell history or process listings.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from contextvars import ContextVar
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from bybit_hybrid.errors import ConfigError

Mode = Literal["hybrid", "rest", "canary", "parallel", "cutover"]
TriggerBy = Literal["MarkPrice", "LastPrice", "IndexPrice"]
EventLoop = Literal["auto", "asyncio", "uvloop"]
Region = Literal["global", "bytick", "eu", "nl", "tr", "kz", "ae", "id", "ge", "jp"]
WsBackendChoice = Literal["picows", "aiohttp"]
_SECTIONS = ("trailing", "aged", "rollout", "rest", "metrics", "log")


class AppSettings(BaseSettings):
    """Every tunable of the service. Units are in the names; percentages are plain percent."""

    model_config = SettingsConfigDict(
        env_prefix="BYBIT_HYBRID_", env_file=".env", extra="forbid", validate_default=True
    )

    # --- connectivity ---
    region: Region = Field(
        default="global",
        description="mainnet hosts of a Bybit entity: global (bybit.com), bytick, eu, nl, tr, kz, "
        "ae, id, ge (bybitgeorgia.ge) or jp (manepa.jp); see docs/connectivity.md",
    )
    proxy_url: SecretStr | None = Field(
        default=None,
        description="proxy for REST and both sockets: http://, https://, socks5:// or "
        "socks5h://[user:password@]host:port (credentials are masked everywhere)",
    )
    proxy_from_env: bool = Field(
        default=False,
        description="use HTTPS_PROXY / ALL_PROXY (and NO_PROXY) when proxy_url is unset",
    )

    # --- rollout (issue: rollout modes and fallback) ---
    mode: Mode = Field(
        default="hybrid",
        description=(
            "which source drives events: hybrid (streams, REST reconciles), rest (polling "
            "only), canary (REST drives, hybrid measured), parallel (REST drives, hybrid "
            "compared), cutover (hybrid for cutover_pct of symbols)"
        ),
    )
    cutover_pct: float = Field(
        default=0.0,
        ge=0,
        le=100,
        description="cutover mode: share of symbols (by stable hash) using the hybrid stream",
    )
    rollout_mark_stale_s: float = Field(
        default=5.0,
        gt=0,
        description="a position mark older than this falls back to REST for that symbol",
    )
    rollout_socket_down_warning_s: float = Field(
        default=30.0, gt=0, description="socket down this long: warning alert"
    )
    rollout_socket_down_critical_s: float = Field(
        default=120.0, gt=0, description="socket down this long: critical alert"
    )
    rollout_no_events_warning_s: float = Field(
        default=60.0,
        gt=0,
        description="no stream events for this long while positions are open: warning",
    )
    rollout_no_events_critical_s: float = Field(
        default=300.0,
        gt=0,
        description="no stream events for this long while positions are open: critical",
    )
    rollout_reconnects_per_hour_critical: int = Field(
        default=5, ge=1, description="more reconnects than this per hour: critical alert"
    )
    rollout_subscription_failures_warning: int = Field(
        default=5, ge=1, description="more failed subscriptions than this: warning alert"
    )
    rollout_healthy_for_s: float = Field(
        default=30.0,
        gt=0,
        description="streams healthy this long before a fallback returns to them",
    )
    rollout_private_down_s: float = Field(
        default=5.0,
        gt=0,
        description="private stream down (or its subscription failing) this long: account to REST",
    )
    rollout_private_ping_interval_s: float = Field(
        default=3.0,
        gt=0,
        le=20,
        description="the private socket pings this often (the public one keeps Bybit's 20 s): "
        "a silent private socket is declared dead within ping + pong (issue 19 F2)",
    )
    rollout_private_pong_timeout_s: float = Field(
        default=2.0,
        gt=0,
        le=10,
        description="a private ping unanswered this long kills the socket "
        "(must be below rollout_private_ping_interval_s)",
    )
    rollout_divergence_warning_pct: Decimal = Field(
        default=Decimal("0.1"), gt=0, description="parallel mode: mark divergence warning, %"
    )
    rollout_divergence_critical_pct: Decimal = Field(
        default=Decimal("1"), gt=0, description="parallel mode: mark divergence critical, %"
    )
    auth_failure_critical_s: float = Field(
        default=60.0,
        gt=0,
        description="API key rejected this long after it had worked: the auth_rejected alert "
        "turns critical",
    )
    auth_failure_exit_s: float = Field(
        default=900.0,
        gt=0,
        description="API key rejected this long after it had worked: run/stream exit (code 2) "
        "with a one-line reason; a key rejected at start-up stops them at once",
    )
    rest_poll_fast_s: float = Field(
        default=1.5,
        gt=0,
        description="REST poll interval while positions are open or streams degraded",
    )
    rest_poll_slow_s: float = Field(default=10.0, gt=0, description="REST poll interval while flat")

    # --- trailing stop ---
    trailing_activation_pct: Decimal = Field(
        default=Decimal("2.0"),
        gt=0,
        le=100,
        description="the trail activates when the mark is this % in profit from entry",
    )
    trailing_callback_pct: Decimal = Field(
        default=Decimal("0.5"),
        gt=0,
        lt=100,
        description="distance of the stop behind the peak (long) or trough (short), in %",
    )
    trailing_breakeven_trigger_pct: Decimal | None = Field(
        default=None,
        gt=0,
        le=100,
        description="optional: at this % profit, move the stop to entry first",
    )
    trailing_min_update_interval_s: float = Field(
        default=30.0, ge=0, description="minimum time between stop updates sent to the exchange"
    )
    trailing_min_improvement_pct: Decimal = Field(
        default=Decimal("0.05"),
        ge=0,
        description="minimum stop improvement worth an exchange update",
    )
    trailing_bypass_improvement_pct: Decimal = Field(
        default=Decimal("1.0"),
        gt=0,
        description="an improvement this large ignores the interval and minimum "
        "(must be >= trailing_min_improvement_pct)",
    )
    trailing_fee_pct_per_side: Decimal = Field(
        default=Decimal("0.055"),
        ge=0,
        lt=10,
        description="taker fee per side, in %: the breakeven stop covers both sides "
        "(Bybit's non-VIP USDT perpetual taker fee is 0.055 %)",
    )
    trailing_sl_trigger_by: TriggerBy = Field(
        default="MarkPrice", description="price type that triggers the exchange stop-loss"
    )
    trailing_monitor_only: bool = Field(
        default=False, description="compute and log trailing decisions, send nothing"
    )
    trailing_monitor_only_symbols: list[str] = Field(
        default_factory=list, description="symbols whose trailing decisions are only logged"
    )
    # Per-symbol overrides: {"BTCUSDT": {"activation_pct": 1.0, "callback_pct": 0.3}}.
    trailing_symbol_overrides: dict[str, dict[str, Decimal]] = Field(
        default_factory=dict,
        description='per-symbol trailing parameters, e.g. {"BTCUSDT": {"callback_pct": 0.3}}',
    )

    # --- aged-position monitor ---
    aged_max_age_h: float = Field(
        default=3.0,
        gt=0,
        description="a position older than this without an active trail enters the grace period",
    )
    aged_grace_h: float = Field(
        default=1.0, ge=0, description="grace period aiming at breakeven plus round-trip fees"
    )
    aged_fee_pct_per_side: Decimal = Field(
        default=Decimal("0.05"),
        ge=0,
        lt=10,
        description="fee per side added to the breakeven target, in %",
    )
    aged_step_pct_per_h: Decimal = Field(
        default=Decimal("0.5"),
        ge=0,
        description="after grace, accepted loss grows by this % per hour",
    )
    aged_max_loss_pct: Decimal = Field(
        default=Decimal("10"), ge=0, le=100, description="cap on the accepted loss, in %"
    )
    aged_monitor_only: bool = Field(
        default=False, description="compute and log aged exits, send nothing"
    )
    aged_close_existing: bool = Field(
        default=False,
        description="also close positions that are already past aged_max_age_h when run "
        "starts (first seen by this state_db); off: those are only monitored and logged",
    )
    aged_monitor_only_symbols: list[str] = Field(
        default_factory=list, description="symbols whose aged exits are only logged, never sent"
    )

    protection_dry_run: bool = Field(
        default=False,
        description="run --dry-run: every trailing and aged decision is computed and logged, "
        "nothing is sent to the exchange",
    )

    # --- service ---
    state_db: Path | None = Field(
        default=None,
        description="SQLite file holding trailing and aged state across restarts (mode 0600); "
        "default: state-<endpoint>-<key id>.sqlite3 in the per-user data directory "
        "($XDG_DATA_HOME/bybit-hybrid or ~/.local/share/bybit-hybrid; macOS ~/Library/"
        "Application Support/bybit-hybrid; Windows %LOCALAPPDATA%\\bybit-hybrid)",
    )
    metrics_host: str = Field(
        default="127.0.0.1",
        description="address of the metrics/health server (loopback by default)",
    )
    metrics_port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description="port of /metrics, /health and /status (off when unset)",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        default="INFO", description="DEBUG, INFO, WARNING, ERROR or CRITICAL"
    )
    log_format: Literal["console", "json"] = Field(
        default="console", description="console (human) or json (one object per line) on stderr"
    )
    log_file: Path | None = Field(
        default=None,
        description="--log-file: also log to this file (mode 0600), size-rotated; read from "
        "the flag or the environment when logging starts",
    )
    log_file_max_bytes: int = Field(
        default=10_000_000, ge=1024, description="a log file is rotated at this size"
    )
    log_file_backups: int = Field(default=5, ge=0, description="rotated log files kept")
    event_loop: EventLoop = Field(
        default="auto",
        description=(
            "event loop for run/stream/demo: auto (uvloop when installed, else asyncio), "
            "asyncio, or uvloop (needs the `uvloop` extra)"
        ),
    )
    ws_backend: WsBackendChoice = Field(
        default="picows",
        description=(
            "WebSocket client library: picows (push-driven, the fast default) or aiohttp "
            "(the previous reader; REST always uses aiohttp)"
        ),
    )

    # --- scale-out bus (docs/bus.md) ---
    bus_url: SecretStr | None = Field(
        default=None,
        description="NATS server(s) of the scale-out bus, nats://host:port[,...]: marks come "
        "from the hub, position events go to bybit.positions.{bus_account} (off when unset)",
    )
    bus_account: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="this worker's account name on the bus (never a key): A-Z a-z 0-9 _ -",
    )
    bus_creds_file: Path | None = Field(
        default=None, description="a NATS .creds file for the bus (JWT + nkey)"
    )
    bus_ca_file: Path | None = Field(
        default=None, description="CA bundle that signs the bus servers (tls:// URLs)"
    )
    bus_cert_file: Path | None = Field(
        default=None,
        description="client certificate (PEM) for bus servers that verify clients; its private "
        "key in bus_key_file, or in the same file",
    )
    bus_key_file: Path | None = Field(
        default=None, description="private key (PEM) of bus_cert_file; never logged or shown"
    )
    bus_replicas: int = Field(
        default=1,
        ge=1,
        le=5,
        description="JetStream replicas of the bus's streams and bucket: 3 on a NATS cluster of 3",
    )
    bus_stale_after_s: float = Field(
        default=5.0,
        gt=1,
        description="no hub heartbeat this long: the worker falls back to its own public socket",
    )

    @model_validator(mode="before")
    @classmethod
    def _canonical_choices(cls, data: Any) -> Any:
        """Choice settings in any case, from every source: `debug` is `DEBUG`, `lastprice` is
        `LastPrice` (issue 18); the stored value is the canonical spelling."""
        if not isinstance(data, dict):
            return data
        return {name: _canonical_choice(cls, name, value) for name, value in data.items()}

    @model_validator(mode="after")
    def _ordered_thresholds(self) -> AppSettings:
        if self.rollout_socket_down_critical_s < self.rollout_socket_down_warning_s:
            raise ValueError("rollout_socket_down_critical_s must be >= the warning threshold")
        if self.rollout_no_events_critical_s < self.rollout_no_events_warning_s:
            raise ValueError("rollout_no_events_critical_s must be >= the warning threshold")
        if self.rollout_divergence_critical_pct < self.rollout_divergence_warning_pct:
            raise ValueError("rollout_divergence_critical_pct must be >= the warning threshold")
        if self.auth_failure_exit_s < self.auth_failure_critical_s:
            raise ValueError("auth_failure_exit_s must be >= auth_failure_critical_s")
        ping_s, pong_s = self.rollout_private_ping_interval_s, self.rollout_private_pong_timeout_s
        if pong_s >= ping_s:
            raise ValueError(
                f"rollout_private_pong_timeout_s ({pong_s:g} s) must be below "
                f"rollout_private_ping_interval_s ({ping_s:g} s): one ping in flight at a time"
            )
        if self.rest_poll_slow_s < self.rest_poll_fast_s:
            raise ValueError("rest_poll_slow_s must be >= rest_poll_fast_s")
        if self.trailing_bypass_improvement_pct < self.trailing_min_improvement_pct:
            raise ValueError(
                "trailing_bypass_improvement_pct must be >= trailing_min_improvement_pct"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Flags (init) beat the environment, which beats .env, which beats the TOML file.
        toml = InitSettingsSource(settings_cls, init_kwargs=_TOML_VALUES.get() or {})
        return init_settings, env_settings, _OursOnly(dotenv_settings), toml


def _canonical_choice(cls: type[BaseSettings], name: str, value: Any) -> Any:
    field = cls.model_fields.get(name)
    if field is None or not isinstance(value, str) or get_origin(field.annotation) is not Literal:
        return value
    for choice in get_args(field.annotation):
        if isinstance(choice, str) and choice.casefold() == value.strip().casefold():
            return choice
    return value


class _OursOnly(PydanticBaseSettingsSource):
    """The `.env` source without variables of others: `.env` also holds BYBIT_API_KEY/SECRET,
    which `extra="forbid"` would otherwise reject. A mistyped BYBIT_HYBRID_* still fails."""

    def __init__(self, inner: PydanticBaseSettingsSource) -> None:
        super().__init__(inner.settings_cls)
        self._inner = inner

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ delegates

    def __call__(self) -> dict[str, Any]:
        fields = self.settings_cls.model_fields
        return {
            name: value
            for name, value in self._inner().items()
            if name in fields or name.lower().startswith("bybit_hybrid_")
        }


# The TOML values of the `load_settings` call in progress, read by the source above.
_TOML_VALUES: ContextVar[dict[str, Any] | None] = ContextVar("bybit_hybrid_toml", default=None)


def read_toml(path: Path) -> dict[str, Any]:
    """Reads a settings file, flattening `[section] key` into `section_key`."""
    try:
        with path.open("rb") as handle:
            raw = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {str(path)!r} is not valid TOML: {exc}") from None
    flat: dict[str, Any] = {}
    for key, value in raw.items():
        if key in _SECTIONS and isinstance(value, Mapping):
            flat.update({f"{key}_{inner}": item for inner, item in value.items()})
        else:
            flat[key] = value
    return flat


def load_settings(
    config_file: Path | None = None, overrides: Mapping[str, Any] | None = None
) -> AppSettings:
    """The effective settings; any invalid value raises a one-line `ConfigError` naming it."""
    toml_values = read_toml(config_file) if config_file is not None else {}
    token = _TOML_VALUES.set(toml_values)
    try:
        kwargs = {k: v for k, v in (overrides or {}).items() if v is not None}
        return AppSettings(**kwargs)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc)) from None
    finally:
        _TOML_VALUES.reset(token)


def describe_validation_error(exc: ValidationError) -> str:
    """`setting trailing_activation_pct: got '-1', must be greater than 0` (first error)."""
    error = exc.errors()[0]
    location = ".".join(str(part) for part in error["loc"]) or "settings"
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        return f"unknown setting {location!r}"
    if "input" in error and error["loc"]:
        # Only the first letter: the rest may quote choices whose case matters ('MarkPrice').
        return f"setting {location}: got {error['input']!r}, {message[:1].lower()}{message[1:]}"
    return f"settings: {message}"


def masked(settings: AppSettings) -> dict[str, Any]:
    """The effective settings as JSON-ready values (no secrets live in AppSettings)."""
    return settings.model_dump(mode="json")
