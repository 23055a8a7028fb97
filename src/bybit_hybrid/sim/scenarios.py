"""Named scripts that drive the simulator over time: quiet, lively and hedge.

A scenario acts on one account through the narrow control interface (`sim/control_api.py`):
its `AccountControl` to trade, the shared `MarketControl` for trends. With several accounts the
simulator runs one copy per account, each with its own random choices.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from bybit_hybrid.sim.control_api import AccountControl, MarketControl
from bybit_hybrid.sim.exchange import Exchange, ExchangeError
from bybit_hybrid.sim.positions import PositionMode, Side

log = logging.getLogger(__name__)

_OLD_POSITION_AGE_MS: Final = 3 * 24 * 3600 * 1000
_TREND_STEPS_PER_TICK: Final = 3


@dataclass(frozen=True, slots=True)
class ScenarioTarget:
    """What a scenario drives: one account, the shared market, and its step period."""

    account: AccountControl
    market: MarketControl
    period_s: float

    @property
    def exchange(self) -> Exchange:
        return self.account.exchange

    def now_ms(self) -> int:
        return self.account.now_ms()

    async def open_position(self, symbol: str, side: Side, qty: Decimal, idx: int) -> str:
        return await self.account.open_position(symbol, side, qty, idx)

    async def close_position(self, symbol: str, idx: int) -> str:
        return await self.account.close_position(symbol, idx)


Scenario = Callable[[ScenarioTarget, random.Random], Awaitable[None]]


async def quiet(sim: ScenarioTarget, rng: random.Random) -> None:
    """No scripted action: prices walk, positions stay as opened at start."""


async def lively(sim: ScenarioTarget, rng: random.Random) -> None:
    """Positions open and close on several symbols; one uptrend; one very old position."""
    symbols = list(sim.exchange.instruments)
    trend_symbol = symbols[0]
    await _ensure_open(sim, trend_symbol, Side.BUY)
    # A steady climb under a long position is what a trailing stop needs to activate.
    sim.market.set_trend(trend_symbol, _TREND_STEPS_PER_TICK)
    if len(symbols) > 1:
        old_symbol = symbols[-1]
        await _ensure_open(sim, old_symbol, Side.SELL)
        old_ms = sim.now_ms() - _OLD_POSITION_AGE_MS
        await sim.account.change_position(old_symbol, 0, open_time_ms=old_ms)
    churn = symbols[1:-1] or symbols
    while True:
        await asyncio.sleep(sim.period_s)
        await _churn_one(sim, rng.choice(churn), rng)


async def hedge(sim: ScenarioTarget, rng: random.Random) -> None:
    """Hedge-mode positions on both sides of up to two flat symbols, resized over time."""
    flat = [s for s in sim.exchange.instruments if not _any_open(sim, s)][:2]
    for symbol in flat:
        await _guard(sim.account.set_position_mode(symbol, PositionMode.HEDGE))
        qty = sim.exchange.instruments[symbol].min_order_qty
        await _guard(sim.open_position(symbol, Side.BUY, qty * 2, 1))
        await _guard(sim.open_position(symbol, Side.SELL, qty, 2))
    while flat:
        await asyncio.sleep(sim.period_s)
        symbol = rng.choice(flat)
        idx = rng.choice((1, 2))
        qty = sim.exchange.instruments[symbol].min_order_qty
        side = Side.BUY if idx == 1 else Side.SELL
        if rng.random() < 0.5:
            side = side.opposite()
        await _guard(sim.open_position(symbol, side, qty, idx))


SCENARIOS: Final[dict[str, Scenario]] = {"quiet": quiet, "lively": lively, "hedge": hedge}


async def run_scenario(
    name: str, account: AccountControl, market: MarketControl, *, period_s: float, seed: int
) -> None:
    """Runs the named scenario on `account` until cancelled; a failing step is logged, not
    fatal."""
    scenario = SCENARIOS.get(name)
    if scenario is None:
        raise ValueError(f"unknown scenario {name!r}; choose from {', '.join(SCENARIOS)}")
    rng = random.Random(seed + 17)
    try:
        await scenario(ScenarioTarget(account, market, period_s), rng)
    except ExchangeError as exc:
        log.warning("sim scenario %s stopped: %s", name, exc)


def _any_open(sim: ScenarioTarget, symbol: str) -> bool:
    return any(pos.is_open for pos in sim.exchange.slots(symbol))


async def _ensure_open(sim: ScenarioTarget, symbol: str, side: Side) -> None:
    if sim.exchange.mode(symbol) is PositionMode.ONE_WAY and not _any_open(sim, symbol):
        qty = sim.exchange.instruments[symbol].min_order_qty * 2
        await sim.open_position(symbol, side, qty, 0)


async def _churn_one(sim: ScenarioTarget, symbol: str, rng: random.Random) -> None:
    if sim.exchange.mode(symbol) is not PositionMode.ONE_WAY:
        return
    pos = sim.exchange.slot(symbol, 0)
    qty = sim.exchange.instruments[symbol].min_order_qty
    if not pos.is_open:
        await _guard(sim.open_position(symbol, rng.choice((Side.BUY, Side.SELL)), qty, 0))
    elif rng.random() < 0.5:
        await _guard(sim.close_position(symbol, 0))
    else:
        await _guard(sim.open_position(symbol, pos.side, qty, 0))


async def _guard(action: Awaitable[object]) -> None:
    try:
        await action
    except ExchangeError as exc:
        log.info("sim scenario step refused: %s", exc)
