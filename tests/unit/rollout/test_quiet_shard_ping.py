"""Rollout modes give public sockets the quiet-shard idle ping their failover needs (issue 19)."""

from __future__ import annotations

import pytest

from bybit_hybrid.protocol.failover import FailoverConfig, quiet_shard_ping_s
from bybit_hybrid.protocol.hybrid import HybridConfig
from bybit_hybrid.protocol.session import SessionConfig
from bybit_hybrid.service.streams import rollout_stream


@pytest.mark.parametrize(("mode", "idle_s"), [("hybrid", 2.0), ("cutover", 2.0), ("canary", None)])
def test_streaming_modes_give_public_sockets_the_quiet_shard_idle_ping(
    mode: str, idle_s: float | None
) -> None:
    """Issue 19: the failover judges a quiet shard by our pongs, so the modes it runs in ping
    a quiet public socket every 0.8 x 0.5 x mark_stale_s (canary's hybrid is left as given)."""
    stream = rollout_stream(mode, "key", "secret")
    assert stream.hybrid._config.session.idle_ping_s == idle_s  # type: ignore[attr-defined]
    assert quiet_shard_ping_s(FailoverConfig()) == 2.0
    assert quiet_shard_ping_s(FailoverConfig(mark_stale_s=30.0)) == 12.0


def test_an_explicit_idle_ping_is_kept() -> None:
    config = HybridConfig(session=SessionConfig(idle_ping_s=7.0))
    stream = rollout_stream("hybrid", "key", "secret", config=config)
    assert stream.hybrid._config.session.idle_ping_s == 7.0  # type: ignore[attr-defined]
