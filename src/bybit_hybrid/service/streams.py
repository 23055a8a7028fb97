"""Builds the position source the configured mode asks for, behind one small contract.

Consumers (`run`, the dashboard, the router) depend only on `facade.PositionStream`: typed core
events through `add_listener`, plus start/stop/stats/status. Every mode offers it:

    rest                          AdaptiveBybitStream (REST polling only)
    canary, parallel, cutover,    RolloutStream (see `rollout/modes.py`); `hybrid` is the
    hybrid                        hybrid stream with REST reconcile and automatic failover
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from bybit_hybrid.bus.settings import BusSettings
from bybit_hybrid.errors import ConfigError
from bybit_hybrid.facade import PositionStream
from bybit_hybrid.protocol.alerts import AlertConfig
from bybit_hybrid.protocol.compare import CompareConfig
from bybit_hybrid.protocol.failover import FailoverConfig
from bybit_hybrid.protocol.polling import PollConfig
from bybit_hybrid.rollout.modes import MODES, RolloutConfig, RolloutStream
from bybit_hybrid.rollout.poller import AdaptiveBybitStream
from bybit_hybrid.service.settings import AppSettings
from bybit_hybrid.stream import BybitHybridStream, EventHandler

# How often failover and alerts sample the streams, at most (finer for tiny thresholds).
MAX_EVAL_INTERVAL_S = 0.25


def poll_config(settings: AppSettings) -> PollConfig:
    return PollConfig(fast_s=settings.rest_poll_fast_s, slow_s=settings.rest_poll_slow_s)


def rollout_config(settings: AppSettings) -> RolloutConfig:
    """The rollout thresholds of AppSettings as the pure machines' configs."""
    s = settings
    failover = FailoverConfig(
        mark_stale_s=s.rollout_mark_stale_s,
        private_down_s=s.rollout_private_down_s,
        healthy_for_s=s.rollout_healthy_for_s,
        subscription_failures=s.rollout_subscription_failures_warning,
    )
    alerts = AlertConfig(
        socket_down_warning_s=s.rollout_socket_down_warning_s,
        socket_down_critical_s=s.rollout_socket_down_critical_s,
        no_events_warning_s=s.rollout_no_events_warning_s,
        no_events_critical_s=s.rollout_no_events_critical_s,
        reconnects_per_hour_critical=s.rollout_reconnects_per_hour_critical,
        subscription_failures_warning=s.rollout_subscription_failures_warning,
        mark_stale_s=s.rollout_mark_stale_s,
        zero_subscriptions_grace_s=s.rollout_mark_stale_s,
        # Two stale periods: a clear waits out one reconnect; start-up connects and subscribes.
        clear_hold_s=2 * s.rollout_mark_stale_s,
        startup_grace_s=2 * s.rollout_mark_stale_s,
    )
    compare = CompareConfig(
        warning_pct=Decimal(s.rollout_divergence_warning_pct),
        critical_pct=Decimal(s.rollout_divergence_critical_pct),
        # REST sees a change up to one (slow, when flat) poll after the private stream.
        grace_s=s.rest_poll_slow_s + s.rest_poll_fast_s,
    )
    return RolloutConfig(
        cutover_pct=s.cutover_pct,
        failover=failover,
        alerts=alerts,
        poll=poll_config(s),
        compare=compare,
        eval_interval_s=min(MAX_EVAL_INTERVAL_S, s.rollout_mark_stale_s / 10),
    )


def make_position_stream(
    settings: AppSettings,
    api_key: str,
    api_secret: str,
    event_handler: EventHandler | None,
    endpoint_kwargs: dict[str, Any],
    **options: Any,
) -> PositionStream:
    """The stream for `settings.mode`. `options` go to the hybrid stream (e.g. `config`,
    `max_active_time_s`, backends); the REST-only stream takes none of the socket ones."""
    mode = settings.mode
    check_bus(settings)
    options.setdefault("ws_backend", settings.ws_backend)
    if mode == "rest":
        rest_options = {k: v for k, v in options.items() if k in ("http_backend", "rng")}
        return AdaptiveBybitStream(
            api_key,
            api_secret,
            event_handler,
            poll=poll_config(settings),
            **rest_options,
            **endpoint_kwargs,
        )
    if mode not in MODES:
        raise ConfigError(f"setting mode: {mode!r} is not one of rest, {', '.join(MODES)}")
    factory = bus_worker_factory(settings)
    if factory is not None:
        options["hybrid_factory"] = factory
    return RolloutStream(
        mode,
        api_key,
        api_secret,
        event_handler,
        rollout=rollout_config(settings),
        **options,
        **endpoint_kwargs,
    )


def check_bus(settings: AppSettings) -> None:
    """Raises `ConfigError` for bus settings that cannot work (before any loop starts)."""
    if settings.bus_url is not None and settings.mode != "hybrid":
        raise ConfigError(f"--bus (bus_url) needs mode hybrid, not {settings.mode}")
    bus_worker_factory(settings)


def bus_settings(settings: AppSettings) -> BusSettings | None:
    """The bus of `bus_url` and friends, or None; a bad value is a `ConfigError`."""
    if settings.bus_url is None:
        return None
    try:
        return BusSettings(
            settings.bus_url.get_secret_value(),
            creds_file=settings.bus_creds_file,
            ca_file=settings.bus_ca_file,
            cert_file=settings.bus_cert_file,
            key_file=settings.bus_key_file,
            replicas=settings.bus_replicas,
            stale_after_s=settings.bus_stale_after_s,
        )
    except ValueError as exc:
        raise ConfigError(f"setting bus_url: {exc}") from None


def bus_worker_factory(settings: AppSettings) -> Callable[..., BybitHybridStream] | None:
    """With a bus: builds the account worker in place of the hybrid stream."""
    bus = bus_settings(settings)
    if bus is None:
        return None
    if settings.bus_account is None:
        raise ConfigError("--bus needs --account NAME (bus_account): the name on the bus")
    return functools.partial(BybitHybridStream, bus_url=bus, bus_account=settings.bus_account)
