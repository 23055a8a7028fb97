"""The campaign's invariant checker can fail: each rule is broken once on purpose against a
(not started) simulator's pure exchange, with a manual clock and a fake trail."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from bybit_hybrid.protocol.domain import PositionKey, Side
from bybit_hybrid.sim import CloseReason, SimConfig, SimServer
from bybit_hybrid.sim import Side as SimSide
from tests.campaign.invariants import ProtectionMonitor

BTC = "BTCUSDT"


@dataclass
class FakeTrail:
    side: Side
    entry_price: Decimal
    stop_price: Decimal | None = None


@dataclass
class FakeTrailing:
    trails: dict[PositionKey, FakeTrail] = field(default_factory=dict)

    def trail(self, key: PositionKey) -> FakeTrail | None:
        return self.trails.get(key)


@dataclass
class FakeProtection:
    trailing: FakeTrailing = field(default_factory=FakeTrailing)


@dataclass
class Clock:
    now: float = 100.0

    def __call__(self) -> float:
        return self.now


def _setup(side: str = "Buy") -> tuple[SimServer, ProtectionMonitor, Clock, FakeProtection, Any]:
    sim = SimServer(SimConfig(symbols=2, positions=0, seed=3))
    clock = Clock()
    monitor = ProtectionMonitor(sim, bound_s=5.0, clock=clock)
    protection = FakeProtection()
    monitor.stack_up(protection, live=True)
    ex = sim.exchange
    ex.market_order(BTC, SimSide(side), Decimal("0.001"), 0, 0)
    pos = ex.positions[(BTC, 0)]
    return sim, monitor, clock, protection, pos


def _our_stop(sim: SimServer, stop: Decimal) -> None:
    body = {
        "category": "linear",
        "symbol": BTC,
        "tpslMode": "Full",
        "positionIdx": 0,
        "stopLoss": str(stop),
    }
    sim.exchange.trading_stop(body, 1)


def test_our_request_loosening_the_held_stop_is_a_violation() -> None:
    sim, monitor, _, _, _ = _setup()
    mark = sim.exchange.prices.mark(BTC)
    _our_stop(sim, mark - 100)
    _our_stop(sim, mark - 50)
    monitor.check()
    assert monitor.violations == []
    _our_stop(sim, mark - 80)
    monitor.check()
    assert len(monitor.violations) == 1 and "loosened" in monitor.violations[0]


def test_a_tighter_hand_set_stop_counts_as_held() -> None:
    sim, monitor, _, _, _ = _setup()
    mark = sim.exchange.prices.mark(BTC)
    _our_stop(sim, mark - 100)
    sim.exchange.change_position(BTC, 0, 2, stop_loss=mark - 20)  # by hand, tighter
    _our_stop(sim, mark - 50)  # ours: tighter than our last, looser than the hand's
    monitor.check()
    assert len(monitor.violations) == 1 and "loosened" in monitor.violations[0]


def test_a_looser_hand_set_stop_resets_what_is_held() -> None:
    sim, monitor, _, _, _ = _setup("Sell")
    mark = sim.exchange.prices.mark(BTC)
    _our_stop(sim, mark + 50)
    sim.exchange.change_position(BTC, 0, 2, stop_loss=mark + 200)  # by hand, looser
    _our_stop(sim, mark + 100)
    monitor.check()
    assert monitor.violations == []


def test_open_past_the_bound_with_the_mark_through_the_trail_stop_is_a_violation() -> None:
    sim, monitor, clock, protection, pos = _setup()
    mark = sim.exchange.prices.mark(BTC)
    trail = FakeTrail(Side.BUY, pos.avg_price, stop_price=mark + 10)  # the mark is through it
    protection.trailing.trails[PositionKey(BTC, 0)] = trail
    monitor.check()
    clock.now += 4.9
    monitor.check()
    assert monitor.violations == []
    clock.now += 0.2
    monitor.check()
    assert len(monitor.violations) == 1 and "still open" in monitor.violations[0]
    # The trail forgetting its stop does not excuse it: the stop of this life is remembered.
    trail.stop_price = None
    assert monitor.lives[(BTC, 0)].trail_stop == mark + 10


def test_monitor_only_and_a_previous_lifes_trail_are_not_charged() -> None:
    sim, monitor, clock, protection, pos = _setup()
    mark = sim.exchange.prices.mark(BTC)
    stale = FakeTrail(Side.BUY, pos.avg_price + 1000, stop_price=mark + 10)  # other entry
    protection.trailing.trails[PositionKey(BTC, 0)] = stale
    monitor.check()
    clock.now += 10
    monitor.check()
    assert monitor.violations == []
    monitor.stack_up(protection, live=False)
    protection.trailing.trails[PositionKey(BTC, 0)] = FakeTrail(
        Side.BUY, pos.avg_price, stop_price=mark + 10
    )
    monitor.check()
    clock.now += 10
    monitor.check()
    assert monitor.violations == []
    # Live again: from now on the bound runs.
    monitor.stack_up(protection, live=True)
    monitor.check()
    clock.now += 5.1
    monitor.check()
    assert len(monitor.violations) == 1


def test_closing_in_time_is_no_violation() -> None:
    sim, monitor, clock, protection, pos = _setup()
    mark = sim.exchange.prices.mark(BTC)
    protection.trailing.trails[PositionKey(BTC, 0)] = FakeTrail(
        Side.BUY, pos.avg_price, stop_price=mark + 10
    )
    monitor.check()
    clock.now += 3
    sim.exchange.close_position(BTC, 0, 3)
    clock.now += 10
    monitor.check()
    assert monitor.violations == []


def test_a_remainder_left_after_our_close_is_a_violation() -> None:
    sim, monitor, clock, _, pos = _setup()
    add = CloseReason.CONTROL  # an add by hand, not one of our orders
    sim.exchange.market_order(BTC, SimSide("Buy"), Decimal("0.002"), 0, 1, source=add)
    monitor.check()
    clock.now += 10
    monitor.check()
    assert monitor.violations == []
    # Our reduce-only close fills only part (a thin book), and nothing closes the rest.
    sim.exchange.market_order(BTC, SimSide("Sell"), Decimal("0.002"), 0, 2, reduce_only=True)
    monitor.check()
    clock.now += 4.9
    monitor.check()
    assert monitor.violations == []
    clock.now += 0.2
    monitor.check()
    assert len(monitor.violations) == 1 and "after our market close" in monitor.violations[0]
    assert pos.is_open
