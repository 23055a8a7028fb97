"""Issue 19 F6: the streams' timer clocks ignore host clock steps (monotonic, anchored once)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from bybit_hybrid.clock import AnchoredClock
from bybit_hybrid.rollout.poller import AdaptiveBybitStream
from bybit_hybrid.stream import BybitHybridStream

STEP_S = 6.0


class _Fake:
    def __init__(self, wall_s: float, mono_s: float) -> None:
        self.wall_s = wall_s
        self.mono_s = mono_s


def test_an_anchored_clock_follows_the_monotonic_clock_not_the_wall() -> None:
    fake = _Fake(wall_s=1_700_000_000.0, mono_s=50.0)
    clock = AnchoredClock(offset_s=0.25, wall=lambda: fake.wall_s, mono=lambda: fake.mono_s)
    assert clock() == pytest.approx(1_700_000_000.25)
    fake.wall_s += STEP_S  # the host clock steps forward
    fake.mono_s += 1.0
    assert clock() == pytest.approx(1_700_000_001.25)
    fake.wall_s -= 2 * STEP_S  # and back
    fake.mono_s += 1.0
    assert clock() == pytest.approx(1_700_000_002.25)


@pytest.mark.parametrize(
    "make",
    [lambda: BybitHybridStream("key", "secret"), lambda: AdaptiveBybitStream("key", "secret")],
)
def test_a_host_clock_step_does_not_move_the_stream_clock(
    monkeypatch: pytest.MonkeyPatch, make: Callable[[], BybitHybridStream | AdaptiveBybitStream]
) -> None:
    stream = make()
    before_s = stream.now()
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + STEP_S)
    after_s = stream.now()
    assert after_s - before_s < STEP_S / 2
