"""Builds the position source the configured mode asks for, behind one small contract.

Consumers (`run`, the dashboard, the router) depend only on `facade.PositionStream`: typed core
events through `add_listener`, plus start/stop/stats/status. Every mode offers it:

    rest                          AdaptiveBybitStream (REST polling only)
    canary, parallel, cutover,    RolloutStream (see `rollout/modes.py`); `hybrid` is the
    hybrid                        hybrid stream with REST reconcile and automatic failover
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from bybit_hybrid.errors import ConfigError
from bybit_hybrid.facade import PositionStream
from bybit_hybrid.protocol.alerts import AlertConfig
from bybit_hybrid.protocol.compare import CompareConfig
from bybit_hybrid.protocol.failover import FailoverConfig
from bybit_hybrid.protocol.polling import PollConfig
from bybit_hybrid.rollout.modes import MODES, RolloutConfig, RolloutStream
from bybit_hybrid.rollout.poller import AdaptiveBybitStream
from bybit_hybrid.service.settings import AppSettings
from bybit_hybrid.stream import EventHandler

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
    )
    compare = CompareConfig(
        warning_pct=Decimal(s.rollout_divergence_warning_pct),
        critical_pct=Decimal(s.rollout_divergence_critical_pct),
        # A hybrid mark is only held against a REST sample this recent.
        max_skew_s=min(1.0, s.rest_poll_fast_s),
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
    return RolloutStream(
        mode,
        api_key,
        api_secret,
        event_handler,
        rollout=rollout_config(settings),
        **options,
        **endpoint_kwargs,
    )
