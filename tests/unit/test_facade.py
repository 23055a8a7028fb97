"""`PositionStream`: the one contract of the three streams, and its `async with`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from bybit_hybrid import BybitHybridStream
from bybit_hybrid.facade import PositionStream
from bybit_hybrid.rollout.modes import RolloutStream
from bybit_hybrid.rollout.poller import AdaptiveBybitStream


class _Recording(PositionStream):
    def __init__(self) -> None:
        self.calls: list[str] = []

    async def start(self) -> None:
        self.calls.append("start")

    async def stop(self) -> None:
        self.calls.append("stop")

    async def wait_ready(self, timeout_s: float = 10.0) -> None:
        self.calls.append("ready")

    def add_listener(self, listener: Callable[[Any], None]) -> None:
        self.calls.append("listener")

    def get_stats(self) -> dict[str, Any]:
        return {}

    def get_status(self) -> dict[str, Any]:
        return {}


async def test_async_with_starts_returns_the_stream_and_stops_even_on_error() -> None:
    stream = _Recording()
    async with stream as entered:
        assert entered is stream
        assert stream.calls == ["start"]
    assert stream.calls == ["start", "stop"]
    failing = _Recording()
    with pytest.raises(RuntimeError, match="boom"):
        async with failing:
            raise RuntimeError("boom")
    assert failing.calls == ["start", "stop"]


def test_every_stream_is_a_position_stream_and_the_contract_is_abstract() -> None:
    for cls in (BybitHybridStream, AdaptiveBybitStream, RolloutStream):
        assert issubclass(cls, PositionStream)
    with pytest.raises(TypeError, match="abstract"):
        PositionStream()  # type: ignore[abstract]
