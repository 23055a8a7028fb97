"""The campaign's invariant checker can fail: each rule is broken once on purpose against a
(not started) simulator's pure exchange, with a manual clock and a fake trail; the stream rule
(a consumer's mark wrong for too long without a declared fallback) against the driver's
observer with hand-made deliveries and exchange marks."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from bybit_hybrid.protocol.domain import PositionKey, Side
from bybit_hybrid.protocol.failover import FailoverSwitched, FeedMode
from bybit_hybrid.sim import CloseReason, SimConfig, SimServer
from bybit_hybrid.sim import Side as SimSide
from tests.campaign.driver import SAMPLE_S, STALE_SLACK_S, _Observer
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


# --- the stream rule: a consumer's mark wrong for too long needs a declared fallback --------

STALE_S = 2.0  # the sampler's threshold in these tests; the slack is the driver's


def _stream(mark: str = "100.0") -> tuple[_Observer, dict[str, Decimal], float]:
    """An observer whose consumer saw BTC open with `mark` at t=0; the exchange's marks."""
    obs = _Observer()
    obs.delivered(_delivery("open", mark), 0.0)
    return obs, {BTC: Decimal(mark)}, STALE_S + STALE_SLACK_S


def _delivery(status: str, mark: str) -> dict[str, Any]:
    return {"symbol": BTC, "position_idx": 0, "status": status, "mark_price": mark}


def _run(obs: _Observer, exchange: dict[str, Decimal], start: float, end: float) -> None:
    """Samples every SAMPLE_S over [start, end), as the driver's sampler does."""
    steps = round((end - start) / SAMPLE_S)
    for i in range(steps):
        obs.sample(STALE_S, start + i * SAMPLE_S, exchange.__getitem__)


def test_a_mark_the_exchange_moved_away_from_is_a_violation_after_the_bound() -> None:
    obs, exchange, bound = _stream()
    exchange[BTC] = Decimal("101.0")  # the exchange moves at once; the consumer never hears
    _run(obs, exchange, 0.0, bound - SAMPLE_S)
    assert obs.stale == []
    _run(obs, exchange, bound, bound + 2 * SAMPLE_S)
    assert obs.stale and "without a declared fallback" in obs.stale[0]


def test_a_quiet_mark_that_stays_right_is_no_violation() -> None:
    obs, exchange, bound = _stream()
    _run(obs, exchange, 0.0, 10 * bound)
    assert obs.stale == []


def test_a_quiet_mark_that_moves_counts_from_the_move_not_from_the_last_delivery() -> None:
    """Campaign seeds 39/73/92/97/102/150/153 (issue 19): a symbol paused for 3 s (right all
    along) that moves again was charged from its last delivery, 3 s before the move."""
    obs, exchange, _bound = _stream()
    _run(obs, exchange, 0.0, 3.0)  # quiet and right for 3 s, longer than the bound
    exchange[BTC] = Decimal("100.5")
    _run(obs, exchange, 3.0, 3.2)
    obs.delivered(_delivery("open", "100.5"), 3.2)  # the stream delivers the move 0.2 s later
    _run(obs, exchange, 3.2, 6.0)
    assert obs.stale == []


def test_a_quiet_mark_that_moves_and_is_never_delivered_is_still_a_violation() -> None:
    obs, exchange, bound = _stream()
    _run(obs, exchange, 0.0, 3.0)
    exchange[BTC] = Decimal("100.5")
    _run(obs, exchange, 3.0, 3.0 + bound - SAMPLE_S)
    assert obs.stale == []
    _run(obs, exchange, 3.0 + bound, 3.0 + bound + 2 * SAMPLE_S)
    assert len(obs.stale) >= 1


def test_a_declared_fallback_excuses_a_wrong_mark_and_its_end_gives_only_the_slack() -> None:
    obs, exchange, _bound = _stream()
    exchange[BTC] = Decimal("101.0")
    polling = FailoverSwitched(BTC, FeedMode.STREAMING, FeedMode.POLLING, "test", 0.5)
    obs.saw_event(polling, 0.5)
    _run(obs, exchange, 0.0, 10.0)
    assert obs.stale == []
    back = FailoverSwitched(BTC, FeedMode.POLLING, FeedMode.STREAMING, "test", 10.0)
    obs.saw_event(back, 10.0)
    _run(obs, exchange, 10.0, 10.0 + STALE_SLACK_S - SAMPLE_S)
    assert obs.stale == []
    _run(obs, exchange, 10.0 + STALE_SLACK_S, 10.0 + STALE_SLACK_S + 2 * SAMPLE_S)
    assert obs.stale


def test_a_closed_position_is_not_charged() -> None:
    obs, exchange, bound = _stream()
    exchange[BTC] = Decimal("101.0")
    obs.delivered(_delivery("closed", "100.0"), 0.1)
    _run(obs, exchange, 0.0, 3 * bound)
    assert obs.stale == []
