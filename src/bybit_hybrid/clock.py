"""The streams' clock: epoch seconds at Bybit's time, advanced by the monotonic clock.

Timers (ping, pong, staleness, polling, failover hold times) must not jump when the host's
wall clock is stepped or when a 10002 resync measures a new offset (issue 19 F6). The clock is
anchored once, at start, to the wall clock plus the measured server offset, and from then on
only the monotonic clock moves it: it stays close to Bybit's time (what WebSocket `expires`
needs), and it never steps. REST signing reads the wall clock plus the current offset instead
(`BybitRestClient.now_ms`), since Bybit checks that stamp against its own clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class AnchoredClock:
    """`wall() + offset_s` read once, then advanced by `mono()`; call it for the time."""

    def __init__(
        self,
        offset_s: float = 0.0,
        *,
        wall: Callable[[], float] = time.time,
        mono: Callable[[], float] = time.monotonic,
    ) -> None:
        self._mono = mono
        # Bybit's time minus the monotonic reading, fixed at the anchor: one addition a call
        # (every received frame is stamped with this clock).
        self._shift_s = wall() + offset_s - mono()

    def __call__(self) -> float:
        return self._mono() + self._shift_s
