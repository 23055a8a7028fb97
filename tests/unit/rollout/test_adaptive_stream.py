"""`AdaptiveBybitStream` and `RolloutStream` without a network: endpoints, secrets, idle state."""

from __future__ import annotations

import pytest

from bybit_hybrid import AdaptiveBybitStream
from bybit_hybrid.errors import ConfigError
from bybit_hybrid.rollout.modes import RolloutConfig
from bybit_hybrid.service.streams import rollout_stream

SECRET = "s3cr3t-value-never-shown"


@pytest.mark.parametrize(
    ("kwargs", "rest_url"),
    [
        ({}, "https://api.bybit.com"),
        ({"testnet": True}, "https://api-testnet.bybit.com"),
        ({"demo": True}, "https://api-demo.bybit.com"),
        ({"base_url": "http://127.0.0.1:9999"}, "http://127.0.0.1:9999"),
    ],
)
def test_endpoints_follow_the_seed_constructor(kwargs: dict[str, object], rest_url: str) -> None:
    stream = AdaptiveBybitStream("key-1234", SECRET, None, **kwargs)  # type: ignore[arg-type]
    assert stream.endpoints.rest_url == rest_url


def test_an_insecure_remote_base_url_is_refused() -> None:
    with pytest.raises(ConfigError):
        AdaptiveBybitStream("key-1234", SECRET, base_url="http://example.com")


def test_the_secret_never_shows_and_an_idle_stream_reports_itself() -> None:
    stream = AdaptiveBybitStream("key-1234", SECRET)
    assert SECRET not in repr(stream)
    stats = stream.get_stats()
    assert stats["mode"] == "rest" and stats["running"] is False and stats["polls"] == 0
    status = stream.get_status()
    assert status["mode"] == "rest" and status["running"] is False and status["ready"] is False
    assert SECRET not in str(status)


def test_rollout_stream_refuses_unknown_modes_and_bad_shares() -> None:
    with pytest.raises(ValueError, match="mode"):
        rollout_stream("rest", "key-1234", SECRET)
    with pytest.raises(ValueError, match="cutover_pct"):
        RolloutConfig(cutover_pct=101)
