"""Random-walk ticker state: seed determinism, tick quantisation, partial deltas, pausing."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bybit_hybrid.sim.instruments import build_instruments
from bybit_hybrid.sim.prices import PriceBook
from tests.unit.sim.helpers import T0_MS

PRICE_FIELDS = ("lastPrice", "markPrice", "indexPrice", "bid1Price", "ask1Price")


def _run(seed: int, steps: int) -> list[dict[str, tuple[str, ...]]]:
    book = PriceBook(build_instruments(8), seed, T0_MS)
    return [book.step() for _ in range(steps)]


def test_same_seed_gives_the_same_path() -> None:
    assert _run(7, 200) == _run(7, 200)
    one = PriceBook(build_instruments(3), 7, T0_MS)
    two = PriceBook(build_instruments(3), 7, T0_MS)
    for _ in range(100):
        one.step()
        two.step()
    assert [t.fields for t in one.tickers.values()] == [t.fields for t in two.tickers.values()]


def test_different_seeds_diverge() -> None:
    assert _run(1, 50) != _run(2, 50)


def test_every_price_stays_on_tick_and_uses_price_scale() -> None:
    book = PriceBook(build_instruments(30), 3, T0_MS)
    for _ in range(300):
        book.step()
    for ticker in book.tickers.values():
        inst = ticker.inst
        for name in PRICE_FIELDS:
            text = ticker.fields[name]
            assert Decimal(text) % inst.tick_size == 0, (inst.symbol, name, text)
            assert len(text.partition(".")[2]) == inst.price_scale, (inst.symbol, name, text)
        assert book.mark(inst.symbol) == Decimal(ticker.fields["markPrice"])
        assert isinstance(book.mark(inst.symbol), Decimal)


def test_some_ticks_carry_mark_price_and_some_do_not() -> None:
    changes = [c for step in _run(5, 100) for c in step.values()]
    with_mark = [c for c in changes if "markPrice" in c]
    without_mark = [c for c in changes if "markPrice" not in c]
    assert with_mark
    assert without_mark
    assert any(set(c) == {"bid1Size", "ask1Size"} for c in without_mark)
    assert any("lastPrice" in c for c in without_mark)


def test_cs_increases_only_when_something_changed() -> None:
    book = PriceBook(build_instruments(4), 9, T0_MS)
    before = {s: t.cs for s, t in book.tickers.items()}
    changes = book.step()
    for symbol, ticker in book.tickers.items():
        assert ticker.cs == before[symbol] + (1 if symbol in changes else 0)


def test_set_prices_and_pause() -> None:
    book = PriceBook(build_instruments(2), 1, T0_MS)
    book.pause("BTCUSDT")
    changed = book.set_prices("BTCUSDT", mark=Decimal("65100.10"))
    assert changed == ("markPrice",)
    assert book.tickers["BTCUSDT"].fields["markPrice"] == "65100.10"
    for _ in range(20):
        assert "BTCUSDT" not in book.step()
    assert book.mark("BTCUSDT") == Decimal("65100.1")
    with pytest.raises(ValueError, match="tickSize"):
        book.set_prices("BTCUSDT", mark=Decimal("65100.05"))


def test_trend_moves_last_and_mark_every_tick() -> None:
    book = PriceBook(build_instruments(1), 1, T0_MS)
    book.set_trend("BTCUSDT", 10)
    start = book.mark("BTCUSDT")
    for _ in range(20):
        assert "markPrice" in book.step()["BTCUSDT"]
    assert book.mark("BTCUSDT") > start


def test_generated_symbols_and_settle_coins() -> None:
    insts = build_instruments(20)
    names = [i.symbol for i in insts]
    assert "SYM012USDT" in names
    assert len(set(names)) == 20
    assert {i.settle_coin for i in insts} == {"USDT", "USDC"}
    assert {i.settle_coin for i in build_instruments(5)} == {"USDT", "USDC"}


@pytest.mark.parametrize("trend", [0, 2])
def test_a_delta_names_only_fields_whose_value_changed(trend: int) -> None:
    # Bybit deltas carry changed fields only; naming an unchanged markPrice would inflate the
    # exchange's apparent mark rate and hide a client that drops real changes.
    book = PriceBook(build_instruments(10), 11, T0_MS)
    for symbol in book.tickers:
        book.set_trend(symbol, trend)
    for _ in range(500):
        before = {s: t.fields.copy() for s, t in book.tickers.items()}
        for symbol, names in book.step().items():
            after = book.tickers[symbol].fields
            assert all(after[n] != before[symbol][n] for n in names), (symbol, names)
    ticker = next(iter(book.tickers))
    same = book.mark(ticker)
    assert book.set_prices(ticker, mark=same) == ()


def test_slices_tick_every_symbol_once_per_round_in_a_fixed_slice() -> None:
    """With N slices, symbol i ticks only in slice i % N; a round of N slices ticks each once."""
    book = PriceBook(build_instruments(10), 3, T0_MS)
    symbols = list(book.tickers)
    initial = {s: t.cs for s, t in book.tickers.items()}
    for _ in range(20):
        before = {s: t.cs for s, t in book.tickers.items()}
        for index in range(4):
            changed = book.step(index, 4)
            assert all(symbols.index(s) % 4 == index for s in changed)
        after = {s: t.cs for s, t in book.tickers.items()}
        assert all(after[s] - before[s] in (0, 1) for s in symbols)  # at most one tick a round
    # Every symbol moved at some point: no slice is skipped.
    assert all(t.cs > initial[s] for s, t in book.tickers.items())


def test_random_phases_keep_one_tick_per_round_in_a_slice_of_their_own_choosing() -> None:
    """Random phases: each symbol stays in one slice, ticks at most once a round, and the
    slices are not the even i % N spacing (50 symbols in 50 slices: some share one)."""
    book = PriceBook(build_instruments(50), 3, T0_MS)
    book.random_phases(50, seed=3)
    symbols = list(book.tickers)
    seen_in: dict[str, set[int]] = {s: set() for s in symbols}
    for _ in range(10):
        before = {s: t.cs for s, t in book.tickers.items()}
        for index in range(50):
            for symbol in book.step(index, 50):
                seen_in[symbol].add(index)
        after = {s: t.cs for s, t in book.tickers.items()}
        assert all(after[s] - before[s] in (0, 1) for s in symbols)
    assert all(len(slots) == 1 for slots in seen_in.values())  # one fixed phase each
    slots = [next(iter(seen_in[s])) for s in symbols]
    assert slots != [i % 50 for i in range(50)]
    assert len(set(slots)) < 50  # independent draws collide; even spacing never does
    again = PriceBook(build_instruments(50), 3, T0_MS)
    again.random_phases(50, seed=3)
    assert again._slot_of == book._slot_of  # same seed, same phases
