"""The failover machine: every transition of the table, illegal ones, and its timing rules."""

from __future__ import annotations

import inspect
import itertools
from decimal import Decimal

import pytest

from bybit_hybrid.protocol import failover
from bybit_hybrid.protocol.errors import IllegalTransition
from bybit_hybrid.protocol.failover import (
    ACCOUNT,
    TRANSITIONS,
    AccountObservation,
    Failover,
    FailoverConfig,
    FailoverSwitched,
    FailoverTrigger,
    FeedMode,
    SymbolObservation,
    cutover_streams,
    transition,
)

M = FeedMode
T = FailoverTrigger
CONFIG = FailoverConfig(mark_stale_s=5.0, private_down_s=4.0, healthy_for_s=10.0)
UP = AccountObservation(private_up=True)
DOWN = AccountObservation(private_up=False)

EXPECTED = {
    (M.STREAMING, T.SUSPECT): M.DEGRADED,
    (M.STREAMING, T.BREACH): M.POLLING,
    (M.DEGRADED, T.HEALTHY): M.STREAMING,
    (M.DEGRADED, T.BREACH): M.POLLING,
    (M.POLLING, T.RECOVERED): M.STREAMING,
}


@pytest.mark.parametrize(("pair", "new"), EXPECTED.items(), ids=str)
def test_every_legal_transition(pair: tuple[FeedMode, FailoverTrigger], new: FeedMode) -> None:
    assert transition(*pair) is new


def test_the_table_is_exactly_the_documented_one() -> None:
    assert dict(TRANSITIONS) == EXPECTED


ILLEGAL = [p for p in itertools.product(FeedMode, FailoverTrigger) if p not in EXPECTED]


@pytest.mark.parametrize("pair", ILLEGAL, ids=lambda p: f"{p[0].value}-{p[1].value}")
def test_illegal_transitions_raise(pair: tuple[FeedMode, FailoverTrigger]) -> None:
    mode, trigger = pair
    with pytest.raises(IllegalTransition) as caught:
        transition(*pair)
    # The shared lookup (protocol.errors.next_state): the error names the trigger and the mode.
    assert (caught.value.event, caught.value.state) == (trigger, mode)
    assert str(caught.value) == f"cannot handle event {trigger.value} in state {mode.value}"


def test_the_lookup_is_the_shared_one_not_a_private_copy() -> None:
    """Issue 17 item 5 / issue 19 item 4: every machine uses protocol.errors.next_state."""
    assert "next_state" in inspect.getsource(failover.transition)
    assert "TRANSITIONS[" not in inspect.getsource(failover)


def _marks(now: float, **mark_at: float | None) -> dict[str, SymbolObservation]:
    return {symbol: SymbolObservation(at) for symbol, at in mark_at.items()}


def _modes(switches: list[FailoverSwitched]) -> list[tuple[str, FeedMode, FeedMode]]:
    return [(s.scope, s.old, s.new) for s in switches]


def test_a_stale_mark_switches_that_symbol_alone_and_recovers_after_healthy_for() -> None:
    f = Failover(CONFIG)
    assert f.evaluate(0.0, UP, _marks(0, BTC=0.0, ETH=0.0)) == []
    # 2.5 s of silence is half the threshold: DEGRADED (fast polling), not yet REST.
    switches = f.evaluate(2.5, UP, _marks(2.5, BTC=0.0, ETH=2.4))
    assert _modes(switches) == [("BTC", M.STREAMING, M.DEGRADED)]
    assert f.degraded() and f.polling_symbols() == set()
    switches = f.evaluate(5.0, UP, _marks(5, BTC=0.0, ETH=4.9))
    assert _modes(switches) == [("BTC", M.DEGRADED, M.POLLING)]
    assert switches[0].reason == "ticker silent 5.0s"
    assert f.polling_symbols() == {"BTC"} and f.symbol_mode("ETH") is M.STREAMING
    # Marks again: the healthy run starts, a relapse resets it, then 10 s unbroken recover.
    assert f.evaluate(6.0, UP, _marks(6, BTC=6.0, ETH=6.0)) == []
    assert f.evaluate(13.0, UP, _marks(13, BTC=8.0, ETH=13.0)) == []  # BTC 5 s stale again
    assert f.evaluate(14.0, UP, _marks(14, BTC=14.0, ETH=14.0)) == []
    assert f.evaluate(23.9, UP, _marks(23.9, BTC=23.9, ETH=23.9)) == []
    switches = f.evaluate(24.0, UP, _marks(24, BTC=24.0, ETH=24.0))
    assert _modes(switches) == [("BTC", M.POLLING, M.STREAMING)]
    assert "healthy for 10s" in switches[0].reason
    assert not f.degraded()


def test_degraded_returns_to_streaming_when_the_trouble_clears_in_time() -> None:
    f = Failover(CONFIG)
    f.evaluate(0.0, UP, _marks(0, BTC=0.0))
    f.evaluate(3.0, UP, _marks(3, BTC=0.0))
    switches = f.evaluate(3.5, UP, _marks(3.5, BTC=3.4))
    assert _modes(switches) == [("BTC", M.DEGRADED, M.STREAMING)]


def test_a_jump_past_the_threshold_goes_straight_to_polling() -> None:
    f = Failover(CONFIG)
    f.evaluate(0.0, UP, _marks(0, BTC=0.0))
    assert _modes(f.evaluate(9.0, UP, _marks(9, BTC=0.0))) == [("BTC", M.STREAMING, M.POLLING)]


def test_a_symbol_never_heard_of_ages_from_when_it_is_held() -> None:
    f = Failover(CONFIG)
    f.evaluate(100.0, UP, _marks(100, SOL=None))
    assert f.evaluate(104.9, UP, _marks(104.9, SOL=None)) != []  # degraded at 2.5 s
    assert f.symbol_mode("SOL") is M.DEGRADED
    f.evaluate(105.0, UP, _marks(105, SOL=None))
    assert f.symbol_mode("SOL") is M.POLLING


def test_a_frame_from_before_the_symbol_was_held_does_not_count() -> None:
    f = Failover(CONFIG)
    f.evaluate(50.0, UP, _marks(50, SOL=1.0))
    assert f.symbol_mode("SOL") is M.STREAMING
    f.evaluate(55.0, UP, _marks(55, SOL=1.0))
    assert f.symbol_mode("SOL") is M.POLLING


def test_symbols_no_longer_held_are_forgotten() -> None:
    f = Failover(CONFIG)
    f.evaluate(0.0, UP, _marks(0, BTC=0.0))
    f.evaluate(6.0, UP, _marks(6, BTC=0.0))
    assert f.polling_symbols() == {"BTC"}
    assert f.evaluate(7.0, UP, {}) == []
    assert f.polling_symbols() == set() and not f.degraded()


def test_private_down_past_threshold_sends_the_account_to_rest_and_leaves_marks() -> None:
    f = Failover(CONFIG)
    f.evaluate(0.0, UP, _marks(0, BTC=0.0, ETH=0.0))
    switches = f.evaluate(1.0, DOWN, _marks(1, BTC=1.0, ETH=1.0))
    assert _modes(switches) == [(ACCOUNT, M.STREAMING, M.DEGRADED)]
    switches = f.evaluate(5.0, DOWN, _marks(5, BTC=5.0, ETH=5.0))
    assert _modes(switches) == [(ACCOUNT, M.DEGRADED, M.POLLING)]
    assert switches[0].reason == "private stream down 4.0s"
    assert f.account_mode is M.POLLING and f.polls_positions()
    # The public tickers are fine: the marks stay on the streams.
    assert f.polling_symbols() == set() and f.symbol_mode("BTC") is M.STREAMING
    f.evaluate(6.0, UP, _marks(6, BTC=6.0, ETH=6.0))
    switches = f.evaluate(16.0, UP, _marks(16, BTC=16.0, ETH=16.0))
    assert _modes(switches) == [(ACCOUNT, M.POLLING, M.STREAMING)]
    assert not f.polls_positions()


def test_a_private_stream_that_flaps_never_recovers_early() -> None:
    f = Failover(CONFIG)
    f.evaluate(0.0, DOWN, {})
    f.evaluate(4.0, DOWN, {})
    assert f.account_mode is M.POLLING
    for t in (5.0, 9.0):  # up, then down again inside the healthy window
        f.evaluate(t, UP, {})
    f.evaluate(10.0, DOWN, {})
    f.evaluate(11.0, UP, {})
    assert f.evaluate(20.9, UP, {}) == []
    assert f.evaluate(21.0, UP, {}) != []


def test_failing_subscriptions_send_the_account_to_rest() -> None:
    f = Failover(CONFIG)
    first = f.evaluate(0.0, AccountObservation(True, subscription_failures=1), {})
    assert _modes(first) == [(ACCOUNT, M.STREAMING, M.DEGRADED)]
    second = f.evaluate(1.0, AccountObservation(True, subscription_failures=5), {})
    assert _modes(second) == [(ACCOUNT, M.DEGRADED, M.POLLING)]
    g = Failover(CONFIG)
    switches = g.evaluate(0.0, AccountObservation(True, gave_up=True), {})
    assert _modes(switches) == [(ACCOUNT, M.STREAMING, M.POLLING)]


def test_a_ticker_subscription_given_up_sends_its_symbol_to_rest_at_once() -> None:
    f = Failover(CONFIG)
    switches = f.evaluate(0.0, UP, {"BTC": SymbolObservation(0.0, gave_up=True)})
    assert _modes(switches) == [("BTC", M.STREAMING, M.POLLING)]
    assert switches[0].reason == "ticker subscription failed"


def test_status_names_each_scope_mode_and_reason() -> None:
    f = Failover(CONFIG)
    f.evaluate(0.0, UP, _marks(0, BTC=0.0))
    f.evaluate(6.0, UP, _marks(6, BTC=0.0))
    status = f.status(7.0)
    assert status["account"] == {"mode": "streaming", "reason": "", "for_s": 7.0, "switches": 0}
    symbols = status["symbols"]
    assert isinstance(symbols, dict)
    assert symbols["BTC"]["mode"] == "polling" and symbols["BTC"]["reason"] == "ticker silent 6.0s"
    assert status["polling_symbols"] == ["BTC"]


def test_config_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="positive"):
        FailoverConfig(mark_stale_s=0)
    with pytest.raises(ValueError, match="suspect_fraction"):
        FailoverConfig(suspect_fraction=0)


def test_cutover_share_is_stable_monotonic_and_about_the_percentage() -> None:
    symbols = [f"SYM{i}USDT" for i in range(2000)]
    at_30 = {s for s in symbols if cutover_streams(s, 30)}
    at_60 = {s for s in symbols if cutover_streams(s, 60)}
    assert at_30 <= at_60  # raising the share only moves symbols to the streams
    assert 0.25 < len(at_30) / len(symbols) < 0.35
    assert not any(cutover_streams(s, 0) for s in symbols)
    assert all(cutover_streams(s, 100) for s in symbols)
    # sha256, not the per-process salted hash(): fixed buckets (of 10,000) for fixed symbols,
    # ETHUSDT 1342, DOGEUSDT 6517, SOLUSDT 8589, BTCUSDT 9065.
    assert cutover_streams("ETHUSDT", 13.43) and not cutover_streams("ETHUSDT", 13.42)
    assert [s for s in ("BTCUSDT", "ETHUSDT", "SOLUSDT", "DOGEUSDT") if cutover_streams(s, 86)] == [
        "ETHUSDT",
        "SOLUSDT",
        "DOGEUSDT",
    ]


def test_f9_no_degraded_account_before_the_private_socket_had_a_chance() -> None:
    # Issue 19 F9: at start the private socket is still connecting; that is not an outage.
    cfg = FailoverConfig(private_down_s=5.0, startup_grace_s=2.0)
    f = Failover(cfg)
    down = AccountObservation(private_up=False)
    f.evaluate(0.0, down, {})
    f.evaluate(1.9, down, {})
    assert not f.degraded()
    # Past the grace, a socket that never came up is suspect, and breaches on the usual
    # threshold counted from start: the grace hides no outage.
    f.evaluate(2.0, down, {})
    assert f.degraded() and not f.polls_positions()
    f.evaluate(5.0, down, {})
    assert f.polls_positions()


def test_only_a_return_from_polling_counts_as_back_to_streaming() -> None:
    """`fallback_switches_total{to="streaming"}` is a fallback ending: a degraded spell that
    cleared by itself (as at every start, before the first ticker) is no fallback (issue 18)."""
    f = Failover(CONFIG)
    f.evaluate(0.0, UP, _marks(0, BTC=None))
    f.evaluate(3.0, UP, _marks(3, BTC=None))  # degraded: no ticker yet
    f.evaluate(3.5, UP, _marks(3.5, BTC=3.4))  # the first ticker: streaming again
    assert (f.stats.to_polling, f.stats.to_streaming, f.stats.to_degraded) == (0, 0, 1)
    f.evaluate(9.0, UP, _marks(9, BTC=3.4))  # a real fallback ...
    f.evaluate(10.0, UP, _marks(10, BTC=10.0))
    f.evaluate(20.0, UP, _marks(20, BTC=20.0))  # ... and its end
    assert f.symbol_mode("BTC") is M.STREAMING
    assert (f.stats.to_polling, f.stats.to_streaming) == (1, 1)


# --- issue 19 F4: liveness by any frame, a frozen mark checked against REST ----------------


def _live(heard_at: float, mark_at: float | None) -> dict[str, SymbolObservation]:
    return {"BTC": SymbolObservation(heard_at, mark_at=mark_at)}


def test_a_quiet_market_with_frames_flowing_never_switches() -> None:
    """Bybit deltas omit unchanged fields: frames without a mark for a minute are a live feed."""
    f = Failover(CONFIG)
    switches: list[FailoverSwitched] = []
    checks: list[str] = []
    for step in range(601):  # 60 s of frames every 0.1 s, the mark never changes
        now = step / 10
        switches += f.evaluate(now, UP, _live(now, 0.0))
        for symbol in f.take_mark_checks():
            checks.append(symbol)
            f.on_mark_check(symbol, now, rest_mark=Decimal("100"), stream_mark=Decimal("100"))
    assert switches == []
    # One REST sample per frozen stretch (5 s), not one per evaluation.
    assert checks == ["BTC"] * 12


def test_a_frozen_mark_that_rest_contradicts_breaches() -> None:
    f = Failover(CONFIG)
    f.evaluate(0.0, UP, _live(0.0, 0.0))
    assert f.evaluate(4.9, UP, _live(4.9, 0.0)) == [] and f.take_mark_checks() == []
    assert f.evaluate(5.0, UP, _live(5.0, 0.0)) == []  # frozen, not yet judged: no switch
    assert f.take_mark_checks() == ["BTC"]
    f.on_mark_check("BTC", 5.2, rest_mark=Decimal("102"), stream_mark=Decimal("100"))
    switches = f.evaluate(5.25, UP, _live(5.25, 0.0))
    assert _modes(switches) == [("BTC", M.STREAMING, M.POLLING)]
    assert switches[0].reason == "mark frozen at 100 while REST says 102"
    # The mark moves again: the breach is over and the healthy run starts.
    assert f.evaluate(6.0, UP, _live(6.0, 6.0)) == []
    assert _modes(f.evaluate(16.0, UP, _live(16.0, 16.0))) == [("BTC", M.POLLING, M.STREAMING)]


def test_a_mark_frame_after_the_check_was_asked_withdraws_the_disagreement() -> None:
    f = Failover(CONFIG)
    f.evaluate(0.0, UP, _live(0.0, 0.0))
    f.evaluate(5.0, UP, _live(5.0, 0.0))
    assert f.take_mark_checks() == ["BTC"]
    f.on_mark_check("BTC", 5.2, rest_mark=Decimal("102"), stream_mark=Decimal("100"))
    assert f.evaluate(5.25, UP, _live(5.25, 5.1)) == []  # a new mark arrived meanwhile


def test_a_failed_or_lost_check_is_asked_again_a_stretch_later() -> None:
    f = Failover(CONFIG)
    f.evaluate(0.0, UP, _live(0.0, 0.0))
    f.evaluate(5.0, UP, _live(5.0, 0.0))
    assert f.take_mark_checks() == ["BTC"]
    f.on_mark_check("BTC", 5.5, rest_mark=None, stream_mark=Decimal("100"))  # REST failed
    f.evaluate(10.4, UP, _live(10.4, 0.0))
    assert f.take_mark_checks() == []
    f.evaluate(10.5, UP, _live(10.5, 0.0))
    assert f.take_mark_checks() == ["BTC"]  # 5 s after the failure; this one is never answered
    f.evaluate(15.4, UP, _live(15.4, 0.0))
    assert f.take_mark_checks() == []
    f.evaluate(15.5, UP, _live(15.5, 0.0))
    assert f.take_mark_checks() == ["BTC"]
    assert f.symbol_mode("BTC") is M.STREAMING


def test_silence_still_breaches_whatever_the_mark() -> None:
    f = Failover(CONFIG)
    f.evaluate(0.0, UP, _live(0.0, 0.0))
    switches = f.evaluate(5.0, UP, _live(0.0, 0.0))
    assert _modes(switches) == [("BTC", M.STREAMING, M.POLLING)]
    assert switches[0].reason == "ticker silent 5.0s"


def test_the_account_mode_is_held_since_the_first_evaluation_not_since_clock_zero() -> None:
    """The shell's clock is anchored to the epoch: "for_s" counted from 0 showed ~1.8e9 s."""
    f = Failover(CONFIG)
    f.evaluate(1_800_000_000.0, UP, {})
    assert f.status(1_800_000_002.5)["account"]["for_s"] == 2.5  # type: ignore[index]
