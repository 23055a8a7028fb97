"""`RolloutStream` is handed its streams: which one gets the handler, and what it refuses."""

from __future__ import annotations

from typing import Any

import pytest

from bybit_hybrid import BybitHybridStream
from bybit_hybrid.rollout.modes import RolloutConfig, RolloutStream
from bybit_hybrid.rollout.poller import AdaptiveBybitStream
from bybit_hybrid.service.streams import rollout_stream


async def _handler(kind: str, payload: dict[str, Any]) -> None:
    """A consumer's handler (never called here: nothing is started)."""


def test_rollout_uses_the_streams_it_is_handed() -> None:
    hybrid = BybitHybridStream("key-1234", "secret-5678")
    rest = AdaptiveBybitStream("key-1234", "secret-5678", _handler)
    stream = RolloutStream("parallel", hybrid, rest)
    assert stream.hybrid is hybrid and stream.rest_stream is rest and stream.driver is rest
    alone = RolloutStream("hybrid", BybitHybridStream("key-1234", "secret-5678", _handler))
    assert alone.rest_stream is None and alone.driver is alone.hybrid


@pytest.mark.parametrize("mode", ["canary", "parallel"])
def test_a_rest_driven_mode_needs_the_rest_stream(mode: str) -> None:
    with pytest.raises(ValueError, match=f"mode {mode}: needs REST-only stream"):
        RolloutStream(mode, BybitHybridStream("key-1234", "secret-5678"))  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", ["cutover", "hybrid"])
def test_a_hybrid_driven_mode_takes_no_rest_stream(mode: str) -> None:
    rest = AdaptiveBybitStream("key-1234", "secret-5678")
    with pytest.raises(ValueError, match=f"mode {mode}: takes no REST-only stream"):
        RolloutStream(mode, BybitHybridStream("key-1234", "secret-5678"), rest)  # type: ignore[arg-type]


@pytest.mark.parametrize(("mode", "rest_drives"), [("canary", True), ("hybrid", False)])
def test_the_composition_root_gives_the_handler_to_the_driving_stream(
    mode: str, rest_drives: bool
) -> None:
    stream = rollout_stream(mode, "key-1234", "secret-5678", _handler)
    hybrid_handler = stream.hybrid._fanout._handler  # type: ignore[attr-defined]
    assert (hybrid_handler is None) is rest_drives
    if rest_drives:
        assert stream.rest_stream is not None
        assert stream.rest_stream._fanout._handler is _handler
    assert stream.endpoints.name == "mainnet"


def test_the_composition_root_builds_cutover_with_its_share() -> None:
    stream = rollout_stream("cutover", "k-1234", "s-5678", rollout=RolloutConfig(cutover_pct=50))
    decide = stream.hybrid._config.stream_symbol  # type: ignore[attr-defined]
    # sha256 buckets (tests/integration/test_rollout_modes.py): ETHUSDT streamed at 50 %.
    assert decide("ETHUSDT") is True and decide("BTCUSDT") is False
    with pytest.raises(ValueError, match="mode must be one of"):
        rollout_stream("rest", "k-1234", "s-5678")
