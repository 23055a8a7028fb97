"""Trading-fault steps of the campaign: each arms simulator trading faults, then drives one open
position through a trailing activation (and for some, back down through the trail's stop), so
the fault meets a real stop request or market close.

The pauses are the world moving on; waits for outcomes go through `wait_for` and never fail the
run by themselves: the invariant monitor (`invariants.py`) judges the outcome.
"""

from __future__ import annotations

import contextlib
import random
from decimal import ROUND_FLOOR, Decimal
from typing import Any, Protocol

from bybit_hybrid.protocol.domain import PositionKey
from bybit_hybrid.sim import SimServer
from tests.campaign.invariants import ProtectionMonitor, stops_of, tighter
from tests.support import UNIT_S, wait_for

Key = tuple[str, int]

TRADING_FAULTS = (
    "stop_10006",
    "stop_10001_zero",
    "stop_10001_side",
    "stop_10002",
    "stop_10016",
    "stop_timeout",
    "stop_lost_reply",
    "stop_window_then_fall",
    "stop_reply_delay",
    "hand_stop_tighter",
    "hand_stop_looser",
    "partial_fill_close",
    "order_fail_close",
    "aged_grace_exit",
    "aged_partial_exit",
)
# Campaign settings keep the aged defaults: grace from 3 h to 4 h of age, target entry + 0.1 %.
_IN_GRACE_MS = int(3.5 * 3600_000)
# Counted failures of one request each (mode, most per arming).
_COUNTED = {
    "stop_10006": ("10006", 4),
    "stop_10001_zero": ("10001_zero", 2),
    "stop_10001_side": ("10001_side", 2),
    "stop_10002": ("10002", 3),
    "stop_10016": ("10016", 3),
    "stop_timeout": ("timeout", 1),
    "stop_lost_reply": ("lost_reply", 1),
}


class CampaignLike(Protocol):
    sim: SimServer
    rng: random.Random
    monitor: ProtectionMonitor

    @property
    def protection(self) -> Any: ...

    def open_keys(self) -> list[Key]: ...

    def free_slots(self) -> list[Key]: ...

    async def expect(self, key: Key, status: str) -> None: ...

    async def push_through_activation(self, key: Key, *, trend: bool = True) -> None: ...


async def trading_fault(run: CampaignLike, name: str) -> None:
    """Arms the faults of `name` and plays them against a random open position."""
    keys = run.open_keys()
    faults, rng = run.sim.faults, run.rng
    if name in ("aged_grace_exit", "aged_partial_exit"):
        free = run.free_slots()
        slot = rng.choice(free) if free else None
        if name == "aged_partial_exit" and slot is not None:
            faults.partial_fill(Decimal("0.5"), count=1, symbol=slot[0])
        await _age_then_exit(run, slot)
        return
    if not keys:
        # Nothing to protect: the fault is armed anyway and meets the next stop request.
        if name in _COUNTED:
            mode, most = _COUNTED[name]
            faults.trading_failure("trading-stop", mode, count=rng.randint(1, most))
        return
    key = rng.choice(keys)
    symbol = key[0]
    if name in _COUNTED:
        mode, most = _COUNTED[name]
        faults.trading_failure("trading-stop", mode, count=rng.randint(1, most), symbol=symbol)
        await run.push_through_activation(key)
    elif name == "stop_reply_delay":
        ms = rng.randint(100, 700)
        faults.reply_delay("trading-stop", ms, count=rng.randint(1, 3), symbol=symbol)
        await run.push_through_activation(key)
        await run.push_through_activation(key)
    elif name in ("hand_stop_tighter", "hand_stop_looser"):
        ticks = rng.randint(1, 30) * (1 if name == "hand_stop_tighter" else -1)
        faults.hand_stop(ticks, count=1, symbol=symbol)
        faults.reply_delay("trading-stop", rng.randint(50, 400), count=1, symbol=symbol)
        await run.push_through_activation(key, trend=False)
        await run.push_through_activation(key)
    elif name == "stop_window_then_fall":
        mode = rng.choice(["10006", "10001_zero", "timeout", "10016"])
        faults.trading_failure(
            "trading-stop", mode, seconds=rng.uniform(0.5, 1.5) * UNIT_S, symbol=symbol
        )
        await _activate_then_fall(run, key)
    elif name == "partial_fill_close":
        faults.trading_failure("trading-stop", "10006", seconds=1.5 * UNIT_S, symbol=symbol)
        fraction = Decimal(rng.choice(["0.3", "0.5", "0.7"]))
        faults.partial_fill(fraction, count=rng.randint(1, 2), symbol=symbol)
        await _activate_then_fall(run, key)
    elif name == "order_fail_close":
        faults.trading_failure("trading-stop", "timeout", seconds=1.5 * UNIT_S, symbol=symbol)
        mode = rng.choice(["10006", "10016", "10002", "timeout"])
        faults.trading_failure("order", mode, count=rng.randint(1, 2), symbol=symbol)
        await _activate_then_fall(run, key)


def trail_stop(run: CampaignLike, key: Key) -> Decimal | None:
    """The tightest stop the current trail holds for `key` (None: no trail, or none yet)."""
    if run.protection is None:
        return None
    trail = run.protection.trailing.trail(PositionKey(*key))
    if trail is None:
        return None
    pos = run.sim.exchange.positions[key]
    best: Decimal | None = None
    for stop in stops_of(trail):
        best = tighter(pos.side.value, best, stop)
    return best


async def _age_then_exit(run: CampaignLike, key: Key | None) -> None:
    """A position that has been open for 3.5 h (in its aged grace) shows up on a free slot and
    the mark moves 0.4 % in its favour, past break-even + fees but short of a trail's activation:
    the aged monitor closes it (through a partial fill when one is armed)."""
    sim = run.sim
    if key is None:
        return
    symbol, idx = key
    side = {1: "Buy", 2: "Sell"}.get(idx, run.rng.choice(["Buy", "Sell"]))
    inst = sim.exchange.instruments[symbol]
    sim.pause_ticks(symbol)
    try:
        qty = inst.min_order_qty * run.rng.randint(2, 4)
        await sim.open_position(symbol, side, qty, idx, open_time_ms=sim.now_ms() - _IN_GRACE_MS)
        await run.expect(key, "open")
        pos = sim.exchange.positions[key]
        target = pos.avg_price * (1 + pos.side.sign * Decimal("0.004"))
        target = (target / inst.tick_size).to_integral_value() * inst.tick_size
        await sim.set_prices(symbol, mark=target, last=target)
        with contextlib.suppress(AssertionError):
            await wait_for(lambda: not pos.is_open, 3 * UNIT_S, f"{key} to exit aged")
        run.monitor.check()
    finally:
        sim.resume_ticks(symbol)


async def _activate_then_fall(run: CampaignLike, key: Key) -> None:
    """Through the activation while stop requests fail, then the mark through the trail's
    stop: the exchange holds no stop of ours, so protection must close at market."""
    sim = run.sim
    await run.push_through_activation(key, trend=False)
    pos = sim.exchange.positions.get(key)
    stop = trail_stop(run, key)
    if pos is None or not pos.is_open or stop is None:
        return
    inst = sim.exchange.instruments[key[0]]
    sign = pos.side.sign
    ticks = run.rng.randint(1, 40)
    target = stop - sign * ticks * inst.tick_size
    target = (target / inst.tick_size).to_integral_value(ROUND_FLOOR) * inst.tick_size
    sim.pause_ticks(key[0])
    try:
        await sim.set_prices(key[0], mark=target, last=target)
        with contextlib.suppress(AssertionError):
            await wait_for(
                lambda: not pos.is_open, run.monitor.bound_s + UNIT_S, f"{key} to be closed"
            )
        run.monitor.check()
    finally:
        sim.resume_ticks(key[0])
