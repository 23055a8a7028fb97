"""MarkCache: snapshot replaces, delta merges (a missing markPrice is unchanged), cs ordering."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from bybit_hybrid.protocol.marks import MarkCache
from bybit_hybrid.wire.decode import TickerMessage, decode_ws
from bybit_hybrid.wire.errors import WireDecodeError
from tests.unit.protocol.builders import tick, ticker


def test_snapshot_f10_sets_the_mark() -> None:
    cache = MarkCache()
    assert cache.apply(ticker("F10"), now=1.0) == Decimal("66666.60")
    assert cache.mark("BTCUSDT") == Decimal("66666.60")
    state = cache.state("BTCUSDT")
    assert state is not None
    assert (state.last_price, state.index_price) == (Decimal("66666.60"), Decimal("115418.19"))
    assert cache.last_cs("BTCUSDT") == 9532239429
    assert cache.last_ts_ms("BTCUSDT") == 1760325052630


def test_delta_without_mark_f11_keeps_the_cached_mark() -> None:
    cache = MarkCache()
    delta = ticker("F11")
    cache.apply(tick("112.5", cs=78039939900, snapshot=True, symbol="AAVEUSDT", last="112.9"), 1.0)
    assert cache.apply(delta, now=2.0) is None
    assert cache.mark("AAVEUSDT") == Decimal("112.5")
    state = cache.state("AAVEUSDT")
    assert state is not None
    assert state.last_price == Decimal("112.9")  # absent from the delta: unchanged as well
    assert state.cs == 78039939929
    assert cache.age_s("AAVEUSDT", now=2.5) == 0.5  # a mark-less delta still refreshes age


def test_delta_with_mark_f12_changes_the_mark_and_keeps_last_price() -> None:
    cache = MarkCache()
    cache.apply(ticker("F10"), now=1.0)
    assert cache.apply(ticker("F12"), now=2.0) == Decimal("86716.30")
    state = cache.state("BTCUSDT")
    assert state is not None
    assert state.mark_price == Decimal("86716.30")
    assert state.last_price == Decimal("66666.60")  # F12 has no lastPrice
    assert state.index_price == Decimal("86756.70")


def test_delta_with_an_equal_mark_reports_no_change() -> None:
    cache = MarkCache()
    cache.apply(tick("100.0", cs=1, snapshot=True), now=1.0)
    assert cache.apply(tick("100.00", cs=2), now=2.0) is None
    assert cache.stats.mark_changes == 1


def test_delta_before_any_snapshot_is_merged_into_an_empty_state() -> None:
    cache = MarkCache()
    assert cache.apply(ticker("F11"), now=1.0) is None
    assert cache.mark("AAVEUSDT") is None
    assert len(cache) == 0
    assert cache.stats.deltas_before_snapshot == 1


def test_snapshot_replaces_the_whole_state() -> None:
    cache = MarkCache()
    cache.apply(tick("100", cs=10, snapshot=True, last="99"), now=1.0)
    cache.apply(tick("101", cs=11), now=2.0)
    assert cache.apply(tick("200", cs=20, snapshot=True), now=3.0) == Decimal("200")
    state = cache.state("BTCUSDT")
    assert state is not None
    assert state.last_price is None  # not merged: the old last price is gone


def test_out_of_order_delta_is_dropped() -> None:
    cache = MarkCache()
    cache.apply(tick("100", cs=10, snapshot=True), now=1.0)
    cache.apply(tick("102", cs=12), now=2.0)
    assert cache.apply(tick("101", cs=11), now=3.0) is None
    assert cache.mark("BTCUSDT") == Decimal("102")
    assert cache.stats.stale_dropped == 1
    assert cache.age_s("BTCUSDT", now=3.0) == 1.0  # the dropped frame did not refresh it


def test_equal_cs_is_applied_because_marks_move_without_trades() -> None:
    cache = MarkCache()
    cache.apply(tick("100", cs=10, snapshot=True), now=1.0)
    assert cache.apply(tick("100.5", cs=10), now=2.0) == Decimal("100.5")


def test_snapshot_with_a_lower_cs_still_resets() -> None:
    cache = MarkCache()
    cache.apply(tick("100", cs=500, snapshot=True), now=1.0)
    assert cache.apply(tick("90", cs=3, snapshot=True), now=2.0) == Decimal("90")
    assert cache.last_cs("BTCUSDT") == 3
    assert cache.apply(tick("91", cs=4), now=3.0) == Decimal("91")


def test_seed_fills_an_empty_cache_but_never_overrides_a_fresher_ws_value() -> None:
    cache = MarkCache()
    assert cache.seed("BTCUSDT", Decimal("50"), ts_ms=1_000, now=1.0) == Decimal("50")
    cache.apply(tick("51", cs=7, snapshot=True, ts_ms=2_000), now=2.0)
    assert cache.seed("BTCUSDT", Decimal("49"), ts_ms=1_500, now=3.0) is None
    assert cache.mark("BTCUSDT") == Decimal("51")
    assert cache.stats.seeds_ignored == 1


def test_a_newer_seed_updates_the_mark_and_keeps_cs() -> None:
    cache = MarkCache()
    cache.apply(tick("51", cs=7, snapshot=True, ts_ms=2_000), now=2.0)
    assert cache.seed("BTCUSDT", Decimal("52"), ts_ms=3_000, now=3.0) == Decimal("52")
    assert cache.last_cs("BTCUSDT") == 7
    assert cache.apply(tick("50", cs=6), now=4.0) is None  # still ordered by cs


def test_drop_forgets_the_symbol() -> None:
    cache = MarkCache()
    cache.apply(ticker("F10"), now=1.0)
    cache.drop("BTCUSDT")
    assert cache.mark("BTCUSDT") is None
    assert cache.age_s("BTCUSDT", now=2.0) is None
    assert cache.last_ts_ms("BTCUSDT") is None
    assert cache.symbols() == set()


def test_stats_count_frames() -> None:
    cache = MarkCache()
    cache.apply(ticker("F10"), now=1.0)
    cache.apply(ticker("F12"), now=2.0)
    cache.apply(replace(ticker("F12"), cs=1), now=3.0)
    assert cache.stats.as_dict() == {
        "frames": 2,
        "snapshots": 1,
        "deltas": 1,
        "deltas_before_snapshot": 0,
        "stale_dropped": 1,
        "mark_changes": 2,
        "seeds": 0,
        "seeds_ignored": 0,
    }


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("markPrice", "abc", "markPrice is not a decimal"),
        ("lastPrice", "1..2", "lastPrice is not a decimal"),
        ("indexPrice", "NaN", "indexPrice is not a finite decimal"),
        ("markPrice", "-Infinity", "markPrice is not a finite decimal"),
        ("markPrice", "1E999999", "markPrice is out of range"),
        ("lastPrice", "1e-40", "lastPrice is out of range"),
    ],
)
def test_apply_frame_names_a_bad_price_and_changes_nothing(
    field: str, value: str, reason: str
) -> None:
    cache = MarkCache()
    good = decode_ws(
        b'{"topic":"tickers.BTCUSDT","type":"snapshot","ts":1,"cs":1,'
        b'"data":{"symbol":"BTCUSDT","markPrice":"100","lastPrice":"99"}}'
    )
    assert isinstance(good, TickerMessage)
    cache.apply_frame(good, now=1.0)
    before = cache.state("BTCUSDT")
    bad = decode_ws(
        b'{"topic":"tickers.BTCUSDT","type":"delta","ts":2,"cs":2,"data":{"symbol":"BTCUSDT","'
        + field.encode()
        + b'":"'
        + value.encode()
        + b'"}}'
    )
    assert isinstance(bad, TickerMessage)
    with pytest.raises(WireDecodeError, match=reason):
        cache.apply_frame(bad, now=2.0)
    assert cache.state("BTCUSDT") == before
    assert cache.stats.frames == 1
