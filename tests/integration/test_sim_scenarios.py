"""Scenario scripts run against a live sim: lively churns and trends, hedge opens both sides."""

from __future__ import annotations

import time

from bybit_hybrid.sim import EventKind, PositionMode, SimConfig, SimServer
from tests.support import wait_for


def _config(scenario: str) -> SimConfig:
    return SimConfig(
        symbols=6, positions=3, rate_hz=50, seed=8, scenario=scenario, scenario_period_s=0.02
    )


async def test_lively_churns_trends_and_ages() -> None:
    async with SimServer(_config("lively")) as sim:
        start_mark = sim.exchange.prices.mark("BTCUSDT")
        history = sim.exchange.history
        await wait_for(lambda: len(history.of_kind(EventKind.CLOSE)) >= 2, what="closes")
        await wait_for(lambda: sim.exchange.prices.mark("BTCUSDT") > start_mark, what="uptrend")
        old = sim.exchange.slot(list(sim.exchange.instruments)[-1], 0)
        assert old.is_open
        assert old.open_time_ms < time.time() * 1000 - 2 * 24 * 3600 * 1000


async def test_hedge_opens_both_sides() -> None:
    async with SimServer(_config("hedge")) as sim:
        ex = sim.exchange
        await wait_for(
            lambda: len([s for s in ex.instruments if ex.mode(s) is PositionMode.HEDGE]) == 2,
            what="hedge mode",
        )
        hedged = [s for s in ex.instruments if ex.mode(s) is PositionMode.HEDGE]
        await wait_for(
            lambda: all(ex.slot(s, 1).is_open or ex.slot(s, 2).is_open for s in hedged),
            what="hedge legs",
        )


async def test_quiet_does_nothing() -> None:
    async with SimServer(_config("quiet")) as sim:
        start_cs = sim.exchange.prices.tickers["BTCUSDT"].cs
        await wait_for(
            lambda: sim.exchange.prices.tickers["BTCUSDT"].cs > start_cs + 5, what="ticks"
        )
        assert len(sim.exchange.open_positions()) == 3
