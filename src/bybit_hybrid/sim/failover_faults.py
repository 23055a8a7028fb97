"""Failover faults of the simulator: a lagging or reordering `position/list`, black holes.

Kept apart from `fault_control.FaultController` (socket and REST-error faults) so each fault family
can grow on its own; the server consults this state at three points: each market tick
(`record`), each `position/list` call (`lagged_positions`, `reorder_delay_s`) and each new
WebSocket (`blackholed`).

- lag: `position/list` answers from the positions as they were `lag_ms` ago, for every
  account (Bybit documents that this endpoint may lag behind the private stream). Snapshots of
  every account are taken each tick while the lag is armed; an answer wanted before the first
  snapshot that old gets the oldest one.
- reorder: each `position/list` answer is computed at once but sent after a random 0 to
  `reorder_ms` delay, so concurrent answers arrive out of order (an older state after a newer).
- black hole: matching sockets, the open ones and every new one, accept TCP and the upgrade
  but send nothing and answer no ping, until switched off.
"""

from __future__ import annotations

import copy
import random
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bybit_hybrid.sim.faults import ConnKind, Target
from bybit_hybrid.sim.positions import Position

PositionState = dict[tuple[str, int], Position]
# account name -> its positions
AccountStates = Mapping[str, PositionState]


@dataclass(slots=True)
class FailoverFaults:
    """Armed failover faults; times are exchange milliseconds passed in by the server."""

    lag_ms: int = 0
    reorder_ms: int = 0
    blackhole: Target | None = None
    rng: random.Random = field(default_factory=lambda: random.Random(19))
    _history: deque[tuple[int, dict[str, PositionState]]] = field(default_factory=deque)

    def set_lag(self, lag_ms: int, positions: AccountStates, now_ms: int) -> None:
        if lag_ms < 0:
            raise ValueError(f"lag_ms must not be negative, got {lag_ms}")
        self.lag_ms = lag_ms
        self._history.clear()
        if lag_ms:
            self.record(positions, now_ms)

    def set_reorder(self, reorder_ms: int) -> None:
        if reorder_ms < 0:
            raise ValueError(f"reorder_ms must not be negative, got {reorder_ms}")
        self.reorder_ms = reorder_ms

    def record(self, positions: AccountStates, now_ms: int) -> None:
        """One snapshot of every account's positions (each tick while a lag is armed)."""
        if not self.lag_ms:
            return
        snapshot = {
            name: {k: copy.copy(p) for k, p in state.items()} for name, state in positions.items()
        }
        self._history.append((now_ms, snapshot))
        horizon_ms = now_ms - self.lag_ms
        # Keep the newest snapshot at or before the horizon: it is the answer until the next.
        while len(self._history) > 1 and self._history[1][0] <= horizon_ms:
            self._history.popleft()

    def lagged_positions(self, account: str, now_ms: int) -> PositionState | None:
        """The positions of `account` that `position/list` must answer from now; None: the
        live state."""
        if not self.lag_ms or not self._history:
            return None
        wanted_ms = now_ms - self.lag_ms
        found = self._history[0][1]
        for at_ms, state in self._history:
            if at_ms > wanted_ms:
                break
            found = state
        return found.get(account, {})

    def reorder_delay_s(self) -> float:
        return self.rng.uniform(0, self.reorder_ms) / 1000 if self.reorder_ms else 0.0

    def blackholed(self, kind: ConnKind) -> bool:
        return self.blackhole is not None and self.blackhole.matches(kind)

    def clear(self) -> None:
        self.lag_ms = self.reorder_ms = 0
        self.blackhole = None
        self._history.clear()

    def to_json(self) -> dict[str, Any]:
        return {
            "position_list_lag_ms": self.lag_ms,
            "position_list_reorder_ms": self.reorder_ms,
            "blackhole": None if self.blackhole is None else self.blackhole.value,
        }
