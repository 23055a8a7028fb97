"""Builds the position source the configured mode asks for, behind one small contract.

Consumers (`run`, the dashboard, the router) depend only on `facade.PositionStream`: typed core
events through `add_listener`, plus start/stop/stats/status. Every mode offers it:

    rest                          AdaptiveBybitStream (REST polling only)
    canary, parallel, cutover,    RolloutStream (see `rollout/modes.py`); `hybrid` is the
    hybrid                        hybrid stream with REST reconcile and automatic failover
"""

from __future__ import annotations

import dataclasses
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
from bybit_hybrid.protocol.hybrid import HybridConfig
from bybit_hybrid.protocol.polling import PollConfig
from bybit_hybrid.rollout.modes import RolloutConfig, RolloutStream
from bybit_hybrid.rollout.poller import AdaptiveBybitStream
from bybit_hybrid.rollout.sources import MODES, check_mode, hybrid_config, rest_drives
from bybit_hybrid.service.settings import AppSettings
from bybit_hybrid.stream import BybitHybridStream, EventHandler

# How often failover and alerts sample the streams, at most (finer for tiny thresholds).
MAX_EVAL_INTERVAL_S = 0.25
# The keywords of `BybitHybridStream` that the REST-only stream takes too.
REST_KEYWORDS = frozenset(
    {"demo", "base_url", "allow_insecure", "region", "proxy", "http_backend", "rng"}
)


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


def with_private_heartbeat(settings: AppSettings, config: HybridConfig | None) -> HybridConfig:
    """`config` (or the default) with the private socket's heartbeat from the settings."""
    base = config or HybridConfig()
    session = dataclasses.replace(
        base.session,
        private_ping_interval_s=settings.rollout_private_ping_interval_s,
        private_pong_timeout_s=settings.rollout_private_pong_timeout_s,
    )
    return dataclasses.replace(base, session=session)


def make_position_stream(
    settings: AppSettings,
    api_key: str,
    api_secret: str,
    event_handler: EventHandler | None,
    endpoint_kwargs: dict[str, Any],
    **options: Any,
) -> PositionStream:
    """The stream for `settings.mode`. `options` go to the hybrid stream (e.g. `config`,
    `max_active_time_s`, backends); the REST-only stream takes none of the socket ones. The
    settings' private heartbeat replaces the one in `config`."""
    mode = settings.mode
    check_bus(settings)
    options.setdefault("ws_backend", settings.ws_backend)
    if mode == "rest":
        return AdaptiveBybitStream(
            api_key,
            api_secret,
            event_handler,
            poll=poll_config(settings),
            **_rest_options(options | endpoint_kwargs),
        )
    if mode not in MODES:
        raise ConfigError(f"setting mode: {mode!r} is not one of rest, {', '.join(MODES)}")
    options["config"] = with_private_heartbeat(settings, options.get("config"))
    factory = bus_worker_factory(settings)
    if factory is not None:
        options["hybrid_factory"] = factory
    return rollout_stream(
        mode,
        api_key,
        api_secret,
        event_handler,
        rollout=rollout_config(settings),
        **options,
        **endpoint_kwargs,
    )


def rollout_stream(
    mode: str,
    api_key: str,
    api_secret: str,
    event_handler: EventHandler | None = None,
    testnet: bool = False,
    *,
    rollout: RolloutConfig | None = None,
    hybrid_factory: Callable[..., BybitHybridStream] = BybitHybridStream,
    **options: Any,
) -> RolloutStream:
    """The rollout `mode` of one account, its streams built here and injected: the hybrid
    stream (`hybrid_factory`: a bus worker, `bybit_hybrid.bus`) and, where REST drives (canary,
    parallel), the REST-only stream, which then gets `event_handler`. `options` are
    `BybitHybridStream`'s keywords; the REST-only stream takes the endpoint ones (and
    `http_backend`, `rng`)."""
    rollout = rollout or RolloutConfig()
    by_rest = rest_drives(check_mode(mode))
    options["config"] = hybrid_config(mode, rollout, options.get("config"))
    handler = None if by_rest else event_handler
    hybrid = hybrid_factory(api_key, api_secret, handler, testnet=testnet, **options)
    rest = None
    if by_rest:
        rest = AdaptiveBybitStream(
            api_key,
            api_secret,
            event_handler,
            testnet,
            poll=rollout.poll,
            **_rest_options(options),
        )
    return RolloutStream(check_mode(mode), hybrid, rest, rollout=rollout)


def _rest_options(options: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in options.items() if k in REST_KEYWORDS | {"testnet"}}


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
