"""Protection settings from `AppSettings`: per-symbol trailing parameters, aged parameters,
monitor-only scopes. Bad overrides fail at startup with a one-line error naming them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from decimal import Decimal
from typing import Any, Protocol

from bybit_hybrid.errors import ConfigError
from bybit_hybrid.protection.aged import MS_PER_HOUR, AgedParams
from bybit_hybrid.protection.trailing import TrailingParams

_FLOAT_FIELDS = frozenset({"min_update_interval_s"})
_OVERRIDABLE = frozenset(f.name for f in fields(TrailingParams))


class ProtectionSettings(Protocol):
    """The settings protection reads (`service.settings.AppSettings` has them all)."""

    @property
    def trailing_activation_pct(self) -> Decimal: ...
    @property
    def trailing_callback_pct(self) -> Decimal: ...
    @property
    def trailing_breakeven_trigger_pct(self) -> Decimal | None: ...
    @property
    def trailing_min_update_interval_s(self) -> float: ...
    @property
    def trailing_min_improvement_pct(self) -> Decimal: ...
    @property
    def trailing_bypass_improvement_pct(self) -> Decimal: ...
    @property
    def trailing_fee_pct_per_side(self) -> Decimal: ...
    @property
    def trailing_sl_trigger_by(self) -> str: ...
    @property
    def trailing_monitor_only(self) -> bool: ...
    @property
    def trailing_monitor_only_symbols(self) -> Sequence[str]: ...
    @property
    def trailing_symbol_overrides(self) -> Mapping[str, Mapping[str, Decimal]]: ...
    @property
    def aged_max_age_h(self) -> float: ...
    @property
    def aged_grace_h(self) -> float: ...
    @property
    def aged_fee_pct_per_side(self) -> Decimal: ...
    @property
    def aged_step_pct_per_h(self) -> Decimal: ...
    @property
    def aged_max_loss_pct(self) -> Decimal: ...
    @property
    def aged_monitor_only(self) -> bool: ...
    @property
    def aged_close_existing(self) -> bool: ...
    @property
    def aged_monitor_only_symbols(self) -> Sequence[str]: ...
    @property
    def protection_dry_run(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class MonitorOnly:
    """Decisions are computed, logged and counted, but nothing is sent, for these scopes."""

    everything: bool = False
    symbols: frozenset[str] = frozenset()

    def applies(self, symbol: str) -> bool:
        return self.everything or symbol in self.symbols


@dataclass(frozen=True, slots=True)
class TrailingConfig:
    defaults: TrailingParams = field(default_factory=TrailingParams)
    overrides: Mapping[str, TrailingParams] = field(default_factory=dict)
    monitor_only: MonitorOnly = MonitorOnly()
    sl_trigger_by: str = "MarkPrice"

    def params_for(self, symbol: str) -> TrailingParams:
        return self.overrides.get(symbol, self.defaults)


@dataclass(frozen=True, slots=True)
class AgedConfig:
    params: AgedParams = field(default_factory=AgedParams)
    monitor_only: MonitorOnly = MonitorOnly()
    # Positions already past max_age when first seen are only monitored unless this is set.
    close_existing: bool = True


def trailing_config(settings: ProtectionSettings) -> TrailingConfig:
    """From an `AppSettings`; a bad value is a `ConfigError` naming the setting."""
    try:
        defaults = TrailingParams(
            activation_pct=settings.trailing_activation_pct,
            callback_pct=settings.trailing_callback_pct,
            breakeven_trigger_pct=settings.trailing_breakeven_trigger_pct,
            min_update_interval_s=settings.trailing_min_update_interval_s,
            min_improvement_pct=settings.trailing_min_improvement_pct,
            bypass_improvement_pct=settings.trailing_bypass_improvement_pct,
            fee_pct_per_side=settings.trailing_fee_pct_per_side,
        )
    except ValueError as exc:
        raise ConfigError(f"trailing settings: trailing_{exc}") from None
    overrides = {
        symbol: _override(defaults, symbol, values)
        for symbol, values in settings.trailing_symbol_overrides.items()
    }
    monitor = MonitorOnly(
        settings.trailing_monitor_only or settings.protection_dry_run,
        frozenset(settings.trailing_monitor_only_symbols),
    )
    return TrailingConfig(defaults, overrides, monitor, settings.trailing_sl_trigger_by)


def aged_config(settings: ProtectionSettings) -> AgedConfig:
    params = AgedParams(
        max_age_ms=round(settings.aged_max_age_h * MS_PER_HOUR),
        grace_ms=round(settings.aged_grace_h * MS_PER_HOUR),
        fee_pct_per_side=settings.aged_fee_pct_per_side,
        step_pct_per_h=settings.aged_step_pct_per_h,
        max_loss_pct=settings.aged_max_loss_pct,
    )
    symbols = frozenset(settings.aged_monitor_only_symbols)
    everything = settings.aged_monitor_only or settings.protection_dry_run
    return AgedConfig(params, MonitorOnly(everything, symbols), settings.aged_close_existing)


def _override(
    defaults: TrailingParams, symbol: str, values: Mapping[str, Decimal]
) -> TrailingParams:
    unknown = sorted(set(values) - _OVERRIDABLE)
    if unknown:
        raise ConfigError(
            f"setting trailing_symbol_overrides.{symbol}: unknown key {unknown[0]!r} "
            f"(one of {', '.join(sorted(_OVERRIDABLE))})"
        )
    changes: dict[str, Any] = {
        k: float(v) if k in _FLOAT_FIELDS else Decimal(v) for k, v in values.items()
    }
    try:
        return replace(defaults, **changes)
    except ValueError as exc:
        raise ConfigError(f"setting trailing_symbol_overrides.{symbol}: {exc}") from None
