"""The protection invariant of the campaign, checked against the SIMULATOR's own state.

After every step and every `SAMPLE_S` the monitor reads the simulator (its positions, its mark,
its history of stop changes) and the trail's stop of every open position, and asserts:

1. *Closed within a bound*: while protection runs live, whenever the simulator's mark is through
   the trail's stop (the tighter of everything the trail wanted or believed held for this position
   life, remembered across restarts), the position is closed within `bound_s`, counted from the
   latest of: the mark going through, the stack being up. Suspended for a symbol while the
   simulator serves it a frozen mark (`stale_mark`: frames keep coming with a wrong price, which
   no client can tell), and only trail states of this position life count (same side, an entry
   this life has had), so a trail of the previous life at the same key is never charged to it.
2. *Never looser*: every stop-loss change a trading-stop request of ours makes on the simulator
   is at least as tight as the stop the exchange held just before (a hand-set stop, tighter or
   looser, becomes what is held; cancelling a held stop is loosening).
3. *Nothing for closed positions*: a closed position gets at most `MAX_AFTER_CLOSE` trading-stop
   requests before it opens again (retries already in flight when it closed).
4. *Verified exits*: once one of our market orders filled on a position (a trailing or aged
   close), that position is flat within `bound_s` (a partial fill's remainder is closed too),
   while the same process runs live.

Reads trail state through `stops_of` only, so it survives renames of the trail's fields.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from bybit_hybrid.protocol.domain import PositionKey
from bybit_hybrid.sim import CloseReason, EventKind, HistoryEvent, SimServer

Key = tuple[str, int]
MAX_AFTER_CLOSE = 3
# Names a trail state may carry its stops under (the stop wanted, the stop confirmed, ...).
_STOP_FIELDS = ("stop_price", "wanted_stop", "confirmed_stop", "wanted", "confirmed")


def stops_of(trail: Any) -> list[Decimal]:
    """Every stop price the trail state holds (wanted, confirmed, believed)."""
    stops: list[Decimal] = []
    for name in _STOP_FIELDS:
        value = getattr(trail, name, None)
        if isinstance(value, Decimal) and value > 0:
            stops.append(value)
    return stops


def tighter(side: str, a: Decimal | None, b: Decimal | None) -> Decimal | None:
    """The more protective of two stops (higher for a long, lower for a short)."""
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b) if side == "Buy" else min(a, b)


def through(side: str, mark: Decimal, stop: Decimal) -> bool:
    """True when the mark is at or past the stop (the side Bybit would trigger on)."""
    return mark <= stop if side == "Buy" else mark >= stop


@dataclass
class Life:
    """One position lifetime on the simulator (from its open to its close)."""

    key: Key
    side: str
    opened_index: int
    entries: set[Decimal] = field(default_factory=set)
    held: Decimal = Decimal(0)  # the stop the exchange holds (0 = none)
    trail_stop: Decimal | None = None
    through_since: float | None = None
    our_order_at: float | None = None
    after_close: int = 0
    reported: bool = False
    exit_reported: bool = False


@dataclass
class ProtectionMonitor:
    """See the module docstring. `protection` is None while the stack is down; `live` is False
    while it runs monitor-only (then nothing is sent, and only rule 2 and 3 apply)."""

    sim: SimServer
    bound_s: float
    clock: Callable[[], float] = time.monotonic
    protection: Any = None
    live: bool = True
    up_since: float = 0.0
    lives: dict[Key, Life] = field(default_factory=dict)
    closed: dict[Key, Life] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)
    checks: int = 0
    crossings: int = 0
    _seen: int = 0

    def stack_up(self, protection: Any, *, live: bool) -> None:
        self.protection, self.live = protection, live
        self.up_since = self.clock()
        for life in self.lives.values():
            life.through_since = None
            life.our_order_at = None  # a close of the previous process is not this one's

    def stack_down(self) -> None:
        self.protection = None

    def check(self) -> None:
        """One sample: new simulator history first, then rule 1 for every open position."""
        self.checks += 1
        history = list(self.sim.exchange.history.since(self._seen))
        self._seen += len(history)
        for event in history:
            self._on_history(event)
        now = self.clock()
        for life in list(self.lives.values()):
            self._check_life(life, now)

    # --- rule 2 and 3: the simulator's history ----------------------------------------------

    def _on_history(self, event: HistoryEvent) -> None:
        if event.position_idx is None:
            return
        key = (event.symbol, event.position_idx)
        if event.kind is EventKind.OPEN:
            self.closed.pop(key, None)
            self.lives[key] = Life(key, event.details["side"], event.index)
            self._set_held(self.lives[key], event, ours=False)
        elif event.kind is EventKind.CLOSE:
            life = self.lives.pop(key, None)
            if life is not None:
                self.closed[key] = life
        elif event.kind is EventKind.ORDER and event.reason is CloseReason.ORDER:
            life = self.lives.get(key)
            if life is not None and life.our_order_at is None and self.protection is not None:
                life.our_order_at = self.clock()
        elif event.kind is EventKind.CHANGE and key in self.lives:
            ours = event.reason is None and event.details.get("cause") == "trading_stop"
            self._set_held(self.lives[key], event, ours=ours)
        elif event.kind is EventKind.TRADING_STOP and key in self.closed:
            life = self.closed[key]
            life.after_close += 1
            if life.after_close == MAX_AFTER_CLOSE + 1:
                self.violations.append(
                    f"{key}: more than {MAX_AFTER_CLOSE} trading-stop requests after it closed"
                )

    def _set_held(self, life: Life, event: HistoryEvent, *, ours: bool) -> None:
        if event.details.get("entry_price"):
            life.entries.add(Decimal(event.details["entry_price"]))
        new = Decimal(event.details.get("stop_loss") or 0)
        old = life.held
        if ours and old > 0 and new != old:
            loosened = new == 0 or (new < old if life.side == "Buy" else new > old)
            if loosened:
                who = "cancelled" if new == 0 else f"loosened {old} -> {new}"
                self.violations.append(
                    f"{life.key} ({life.side}): our trading-stop {who} on the exchange "
                    f"(history #{event.index})"
                )
        if event.reason is CloseReason.CONTROL or ours or new != old:
            life.held = new

    # --- rule 1: closed within the bound -----------------------------------------------------

    def _check_life(self, life: Life, now: float) -> None:
        protection = self.protection
        if protection is None:
            return
        self._check_exit(life, now)
        trail = protection.trailing.trail(PositionKey(*life.key))
        if trail is not None and _of_life(trail, life):
            for stop in stops_of(trail):
                life.trail_stop = tighter(life.side, life.trail_stop, stop)
        pos = self.sim.exchange.positions.get(life.key)
        frozen = life.key[0] in self.sim.faults.state.stale_marks
        if pos is None or not pos.is_open or life.trail_stop is None or not self.live or frozen:
            life.through_since = None
            return
        mark = self.sim.exchange.prices.mark(life.key[0])
        if not through(life.side, mark, life.trail_stop):
            life.through_since = None
            return
        if life.through_since is None:
            life.through_since = now
            self.crossings += 1
        start = max(life.through_since, self.up_since)
        if now - start > self.bound_s and not life.reported:
            life.reported = True
            self.violations.append(
                f"{life.key} ({life.side}): still open {now - start:.1f}s after the mark "
                f"{mark} went through the trail's stop {life.trail_stop} (exchange holds "
                f"{pos.stop_loss or 'no stop'}; trail now {_describe(trail)}; "
                f"our last stop requests: {self._recent_requests(life)})"
            )

    def _check_exit(self, life: Life, now: float) -> None:
        if life.our_order_at is None or life.exit_reported or not self.live:
            return
        pos = self.sim.exchange.positions.get(life.key)
        if pos is not None and pos.is_open and now - life.our_order_at > self.bound_s:
            life.exit_reported = True
            self.violations.append(
                f"{life.key} ({life.side}): still open ({pos.size}) "
                f"{now - life.our_order_at:.1f}s after our market close filled"
            )

    def _recent_requests(self, life: Life, last: int = 4) -> list[str]:
        requests = [
            e
            for e in self.sim.exchange.history.since(life.opened_index)
            if e.kind is EventKind.TRADING_STOP and (e.symbol, e.position_idx) == life.key
        ]
        return [
            f"{e.details.get('body', {}).get('stopLoss')}->"
            f"{e.details.get('injected') or e.details.get('ret_code')}"
            for e in requests[-last:]
        ]


def _of_life(trail: Any, life: Life) -> bool:
    side = getattr(getattr(trail, "side", None), "value", None)
    return side == life.side and getattr(trail, "entry_price", None) in life.entries


def _describe(trail: Any) -> str:
    if trail is None:
        return "none"
    fields = ("phase", "extreme_price", *_STOP_FIELDS)
    return ",".join(f"{n}={getattr(trail, n)}" for n in fields if hasattr(trail, n))
