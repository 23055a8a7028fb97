"""PositionBook: recorded pushes, seq ordering, dedupe, flips, marks and REST reconcile."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from bybit_hybrid.protocol.domain import PositionKey, Side, Source
from bybit_hybrid.protocol.events import (
    MarkUpdated,
    PositionChanged,
    PositionClosed,
    PositionEvent,
    PositionOpened,
    to_contract,
)
from bybit_hybrid.protocol.positions import PositionBook, confirmation_requests
from tests.unit.protocol.builders import pos, rest_positions, ws_positions

BTC0 = PositionKey("BTCUSDT", 0)


def _apply_all(book: PositionBook, name: str, now: float = 1.0) -> list[PositionEvent]:
    return [e for row in ws_positions(name) for e in book.apply_position(row, now)]


def _kinds(events: list[PositionEvent]) -> list[str]:
    return [e.kind for e in events]


# -- recorded frames ----------------------------------------------------------------------


def test_open_f13_takes_entry_from_entry_price() -> None:
    book = PositionBook()
    [event] = _apply_all(book, "F13", now=5.0)
    assert isinstance(event, PositionOpened)
    view = event.view
    assert view.key == BTC0
    assert (view.side, view.size, view.entry_price) == (Side.BUY, Decimal("0.01"), Decimal(65000))
    # No ticker yet: the push's own markPrice is the fallback.
    assert view.mark_price == Decimal("65120.5")
    assert view.unrealised_pnl == Decimal("1.205")
    assert (view.stop_loss, view.take_profit, view.liq_price) == (
        Decimal(63700),
        None,
        Decimal("58823.4"),
    )
    assert (view.source, view.exchange_ts_ms, view.seq, view.cs) == (
        Source.POSITION,
        1762199126022,
        325852190774,
        None,
    )
    assert view.received_at == 5.0
    assert view.open_time_ms == 1762199125980
    assert book.get(BTC0) == view
    assert book.stats.opens == 1


def test_open_prefers_the_ticker_mark_over_the_push_mark() -> None:
    book = PositionBook()
    assert book.apply_mark("BTCUSDT", Decimal(65200), ts_ms=1, cs=9, now=1.0) == []
    [event] = _apply_all(book, "F13")
    assert event.view.mark_price == Decimal(65200)
    assert event.view.unrealised_pnl == Decimal("2.00")


def test_hedge_f14_is_two_positions_on_one_symbol() -> None:
    book = PositionBook()
    events = _apply_all(book, "F14")
    assert _kinds(events) == ["opened", "opened"]
    assert book.open_keys() == [PositionKey("ETHUSDT", 1), PositionKey("ETHUSDT", 2)]
    assert book.open_symbols() == {"ETHUSDT"}
    assert book.symbol_refcounts() == {"ETHUSDT": 2}
    sides = [(v.side, v.entry_price) for v in book.views()]
    assert sides == [(Side.BUY, Decimal(3200)), (Side.SELL, Decimal(3250))]


def test_mark_revalues_both_hedge_sides() -> None:
    book = PositionBook()
    _apply_all(book, "F14")
    events = book.apply_mark("ETHUSDT", Decimal(3300), ts_ms=77, cs=123, now=9.0)
    assert all(isinstance(e, MarkUpdated) for e in events)
    long, short = (e.view for e in events)
    assert long.unrealised_pnl == Decimal("50.0")  # +1 * (3300 - 3200) * 0.5
    assert short.unrealised_pnl == Decimal("-10.0")  # -1 * (3300 - 3250) * 0.2
    assert {(v.source, v.cs, v.exchange_ts_ms, v.received_at) for v in (long, short)} == {
        (Source.TICKER, 123, 77, 9.0)
    }
    assert long.seq == 140612148849400  # the position's seq stays known
    assert book.apply_mark("ETHUSDT", Decimal(3300), ts_ms=78, cs=124, now=9.1) == []
    assert book.apply_mark("XRPUSDT", Decimal(1), ts_ms=78, cs=1, now=9.1) == []
    assert book.stats.mark_updates == 2


def test_close_f15_keeps_last_side_and_entry_then_forgets_the_key() -> None:
    book = PositionBook()
    [close_row] = ws_positions("F15")
    opened = pos(idx=2, side=Side.SELL, size="0.3", entry="28000", seq=8327597000)
    book.apply_position(opened, now=1.0)
    book.apply_mark("BTCUSDT", Decimal(28100), ts_ms=1, cs=1, now=1.5)
    [event] = book.apply_position(close_row, now=2.0)
    assert isinstance(event, PositionClosed)
    view = event.view
    assert (view.side, view.entry_price, view.size) == (Side.SELL, Decimal(28000), Decimal(0))
    assert (view.status, view.unrealised_pnl, view.mark_price) == (
        "closed",
        Decimal(0),
        Decimal(28100),
    )
    assert (view.seq, view.exchange_ts_ms, view.source) == (
        8327597863,
        1697682317044,
        Source.POSITION,
    )
    contract = to_contract(view)
    assert (contract["side"], contract["size"], contract["status"]) == ("Sell", 0, "closed")
    assert book.get(close_row.key) is None
    assert book.symbol_refcounts() == {}
    assert book.open_symbols() == set()
    reopen = pos(idx=2, side=Side.SELL, size="0.1", entry="29000", seq=8327597900)
    assert _kinds(book.apply_position(reopen, now=3.0)) == ["opened"]


def test_close_for_an_unknown_key_emits_nothing() -> None:
    book = PositionBook()
    assert _apply_all(book, "F15") == []
    assert book.stats.flat_ignored == 1
    assert len(book) == 0


def test_liquidation_close_reports_the_liq_status() -> None:
    book = PositionBook()
    book.apply_position(pos(seq=1), now=1.0)
    flat = replace(pos(size="0", seq=2), position_status="Liq")
    [event] = book.apply_position(flat, now=2.0)
    assert isinstance(event, PositionClosed)
    assert event.view.position_status == "Liq"


def test_rest_f16_entry_comes_from_avg_price() -> None:
    book = PositionBook()
    [event] = book.reconcile(rest_positions("F16"), now=1.0)
    assert isinstance(event, PositionOpened)
    assert event.view.entry_price == Decimal(65000)
    assert (event.view.source, event.view.exchange_ts_ms) == (Source.REST, 1762199130000)


def test_rest_row_equal_to_the_stream_is_a_duplicate() -> None:
    book = PositionBook()
    _apply_all(book, "F13")
    assert book.reconcile(rest_positions("F16"), now=2.0) == []
    assert book.stats.duplicates_dropped == 1


# -- ordering and dedupe ------------------------------------------------------------------


def test_lower_seq_is_dropped() -> None:
    book = PositionBook()
    book.apply_position(pos(size="2", seq=20), now=1.0)
    assert book.apply_position(pos(size="1", seq=19, updated_ms=9_999), now=2.0) == []
    view = book.get(BTC0)
    assert view is not None and view.size == 2
    assert book.stats.stale_dropped == 1


def test_equal_seq_older_updated_time_is_dropped() -> None:
    book = PositionBook()
    book.apply_position(pos(seq=20, updated_ms=2_000, stop_loss="90"), now=1.0)
    assert book.apply_position(pos(seq=20, updated_ms=1_999, stop_loss="95"), now=2.0) == []
    assert book.stats.stale_dropped == 1


def test_equal_seq_newer_updated_time_is_a_change() -> None:
    # A TP/SL edit carries the seq of the last trade (§6.4) but a newer updatedTime.
    book = PositionBook()
    book.apply_position(pos(seq=20, updated_ms=2_000, stop_loss="90"), now=1.0)
    [event] = book.apply_position(pos(seq=20, updated_ms=2_001, stop_loss="95"), now=2.0)
    assert isinstance(event, PositionChanged)
    assert event.changed == frozenset({"stop_loss"})
    assert event.view.stop_loss == Decimal(95)


def test_equal_stamps_use_creation_time_between_stream_pushes() -> None:
    book = PositionBook()
    book.apply_position(pos(seq=20, updated_ms=2_000, ts_ms=5_000, size="2"), now=1.0)
    older = pos(seq=20, updated_ms=2_000, ts_ms=4_999, size="3")
    assert book.apply_position(older, now=2.0) == []
    assert book.stats.stale_dropped == 1


def test_order_action_pushes_without_change_are_dropped() -> None:
    book = PositionBook()
    book.apply_position(pos(seq=20, updated_ms=2_000), now=1.0)
    # Same stamps (a resend) and a newer stamp with only mark/PnL different (§8.11).
    assert book.apply_position(pos(seq=20, updated_ms=2_000), now=2.0) == []
    assert book.apply_position(pos(seq=20, updated_ms=2_500, mark="150"), now=3.0) == []
    assert book.stats.duplicates_dropped == 2
    # The stamp still advanced: a row between the two is now stale.
    assert book.apply_position(pos(seq=20, updated_ms=2_200, size="9"), now=4.0) == []


def test_higher_seq_always_wins_even_with_an_older_updated_time() -> None:
    book = PositionBook()
    book.apply_position(pos(seq=20, updated_ms=2_000), now=1.0)
    [event] = book.apply_position(pos(seq=21, updated_ms=1_000, size="3"), now=2.0)
    assert isinstance(event, PositionChanged)
    assert event.changed == frozenset({"size"})


def test_a_late_older_open_cannot_resurrect_a_closed_key() -> None:
    book = PositionBook()
    book.apply_position(pos(seq=20), now=1.0)
    book.apply_position(pos(size="0", seq=22), now=2.0)
    assert book.apply_position(pos(seq=21), now=3.0) == []
    assert len(book) == 0


def test_unknown_and_never_traded_seq_fall_back_to_updated_time() -> None:
    book = PositionBook()
    assert book.apply_position(pos(symbol="NEWUSDT", size="0", seq=-1), now=1.0) == []
    [opened] = book.apply_position(pos(seq=None, updated_ms=1_000), now=1.0)
    assert opened.view.seq is None
    assert book.apply_position(pos(seq=None, updated_ms=999, size="5"), now=2.0) == []
    [changed] = book.apply_position(pos(seq=None, updated_ms=1_001, size="5"), now=3.0)
    assert isinstance(changed, PositionChanged)
    [seq_known] = book.apply_position(pos(seq=7, updated_ms=1_002, size="6"), now=4.0)
    assert seq_known.view.seq == 7
    # -1 is lower than any real seq: a never-traded row cannot roll back a traded position.
    assert book.apply_position(pos(seq=-1, updated_ms=9_000, size="0"), now=5.0) == []


def test_size_without_side_is_dropped_as_invalid() -> None:
    book = PositionBook()
    assert book.apply_position(replace(pos(), side=None), now=1.0) == []
    assert book.stats.invalid_dropped == 1


def test_change_event_carries_the_live_mark() -> None:
    book = PositionBook()
    book.apply_position(pos(seq=1, size="1", entry="100"), now=1.0)
    book.apply_mark("BTCUSDT", Decimal(110), ts_ms=1, cs=1, now=1.1)
    [event] = book.apply_position(pos(seq=2, size="2", entry="105", mark="999"), now=2.0)
    assert isinstance(event, PositionChanged)
    assert event.changed == frozenset({"size", "entry_price"})
    assert (event.view.mark_price, event.view.unrealised_pnl) == (Decimal(110), Decimal(10))
    assert (event.view.source, event.view.cs) == (Source.POSITION, None)


def test_forget_mark_falls_back_to_the_push_mark() -> None:
    book = PositionBook()
    book.apply_mark("BTCUSDT", Decimal(110), ts_ms=1, cs=1, now=1.0)
    book.forget_mark("BTCUSDT")
    assert book.mark("BTCUSDT") is None
    [event] = book.apply_position(pos(mark="101"), now=2.0)
    assert event.view.mark_price == Decimal(101)


def test_one_way_flip_is_a_close_of_the_old_side_then_an_open_of_the_new() -> None:
    book = PositionBook()
    book.apply_position(pos(side=Side.BUY, size="1", entry="100", seq=1), now=1.0)
    events = book.apply_position(pos(side=Side.SELL, size="2", entry="120", seq=2), now=2.0)
    assert _kinds(events) == ["closed", "opened"]
    closed, opened = (e.view for e in events)
    assert (closed.side, closed.entry_price, closed.size) == (Side.BUY, Decimal(100), Decimal(0))
    assert (opened.side, opened.entry_price, opened.size) == (Side.SELL, Decimal(120), Decimal(2))
    assert book.symbol_refcounts() == {"BTCUSDT": 1}
    assert (book.stats.opens, book.stats.closes, book.stats.flips) == (2, 1, 1)


def test_a_newer_open_time_on_the_same_side_is_a_close_then_an_open() -> None:
    # A stop-loss close and a reopen 161 ms later inside one REST poll while the private
    # stream was down (campaign seed 86): only openTime tells the two trades apart.
    book = PositionBook()
    first = replace(pos(size="1", entry="100", seq=1), open_time_ms=1_000)
    book.apply_position(first, now=1.0)
    later = replace(pos(size="1", entry="95", seq=3), open_time_ms=5_000, source=Source.REST)
    events = book.reconcile([later], now=2.0, requested_at=1.5)
    assert _kinds(events) == ["closed", "opened"]
    closed, opened = (e.view for e in events)
    assert (closed.entry_price, opened.entry_price) == (Decimal(100), Decimal(95))
    assert opened.open_time_ms == 5_000


def test_an_older_open_time_is_an_ordinary_change() -> None:
    book = PositionBook()
    book.apply_position(replace(pos(seq=1), open_time_ms=5_000), now=1.0)
    events = book.apply_position(replace(pos(seq=2), open_time_ms=1_000), now=2.0)
    assert _kinds(events) == ["changed"]


# -- reconcile ----------------------------------------------------------------------------


def _closed_on_absence(book: PositionBook, symbol: str = "BTCUSDT") -> list[PositionEvent]:
    """A listing misses the key, then a second one sent after the miss misses it too."""
    assert book.reconcile([], now=3.0, requested_at=2.0) == []
    assert book.take_confirmations() == [symbol]
    return book.reconcile([], now=5.0, requested_at=4.0)


def test_reconcile_emits_missed_open_and_change_but_only_asks_about_a_missing_key() -> None:
    book = PositionBook()
    book.apply_position(pos(symbol="AAAUSDT", seq=5, size="1"), now=1.0)
    book.apply_position(pos(symbol="BBBUSDT", seq=5, size="1"), now=1.0)
    rows = [
        replace(pos(symbol="AAAUSDT", seq=6, size="3"), source=Source.REST, exchange_ts_ms=777),
        replace(pos(symbol="CCCUSDT", seq=1, size="1"), source=Source.REST, exchange_ts_ms=777),
    ]
    events = book.reconcile(rows, now=10.0, requested_at=9.0)
    assert [(e.kind, e.key.symbol) for e in events] == [
        ("changed", "AAAUSDT"),
        ("opened", "CCCUSDT"),
    ]
    # Absence is evidence, not proof (issue 19 F1): BBB stays open and is asked about.
    assert book.open_symbols() == {"AAAUSDT", "BBBUSDT", "CCCUSDT"}
    assert book.take_confirmations() == ["BBBUSDT"]
    assert book.take_confirmations() == []
    assert (book.stats.reconciles, book.stats.reconcile_misses, book.stats.reconcile_closes) == (
        1,
        1,
        0,
    )


def test_one_lagging_listing_never_closes_an_open_position() -> None:
    # F1: the position opened at 1.0 (a push); a listing sent at 2.0 lags and misses it.
    book = PositionBook()
    book.apply_position(pos(seq=5, updated_ms=1_000), now=1.0)
    assert book.reconcile([], now=3.0, requested_at=2.0) == []
    assert BTC0 in book
    assert book.stats.closes == 0


def test_a_newer_flat_row_in_the_confirmation_closes() -> None:
    book = PositionBook()
    book.apply_position(pos(seq=5, updated_ms=1_000), now=1.0)
    book.reconcile([], now=3.0, requested_at=2.0)
    assert book.take_confirmations() == ["BTCUSDT"]
    flat = replace(pos(size="0", seq=6, updated_ms=1_500), source=Source.REST, exchange_ts_ms=9)
    [event] = book.confirm("BTCUSDT", [flat], now=3.2, requested_at=3.1)
    assert isinstance(event, PositionClosed)
    assert (event.view.size, event.view.side, event.view.source) == (
        Decimal(0),
        Side.BUY,
        Source.REST,
    )
    assert BTC0 not in book


def test_an_older_row_in_the_confirmation_withdraws_the_miss() -> None:
    # The confirmation lags too: its flat row is older than the push the book holds, so REST
    # is behind the book and the listing's absence proved nothing.
    book = PositionBook()
    book.apply_position(pos(seq=5, updated_ms=1_000), now=1.0)
    book.reconcile([], now=3.0, requested_at=2.0)
    older_flat = replace(pos(size="0", seq=4, updated_ms=900), source=Source.REST)
    assert book.confirm("BTCUSDT", [older_flat], now=3.2, requested_at=3.1) == []
    assert book.stats.reconcile_misses_withdrawn == 1
    # A later miss is a first miss again: asked about, not closed.
    assert book.reconcile([], now=5.0, requested_at=4.0) == []
    assert BTC0 in book
    assert book.take_confirmations() == ["BTCUSDT"]


def test_a_confirmation_that_does_not_list_the_key_closes_it() -> None:
    # Bybit lists a symbol's rows whether or not they are open; a key it leaves out is gone
    # (here: the account went from hedge to one-way mode).
    book = PositionBook()
    hedge = PositionKey("ETHUSDT", 1)
    book.apply_position(pos(symbol="ETHUSDT", idx=1, seq=5), now=1.0)
    book.reconcile([], now=3.0, requested_at=2.0)
    one_way_flat = replace(pos(symbol="ETHUSDT", idx=0, size="0", seq=7), source=Source.REST)
    [event] = book.confirm("ETHUSDT", [one_way_flat], now=3.2, requested_at=3.1)
    assert isinstance(event, PositionClosed) and event.key == hedge
    assert book.stats.reconcile_closes == 1


def test_a_confirmation_ignores_what_the_stream_saw_after_it_was_sent() -> None:
    book = PositionBook()
    book.apply_position(pos(seq=5), now=1.0)
    book.reconcile([], now=3.0, requested_at=2.0)
    book.apply_position(pos(seq=6, size="2"), now=3.5)  # a push while the confirmation flies
    assert book.confirm("BTCUSDT", [], now=3.6, requested_at=3.1) == []
    assert BTC0 in book


def test_a_second_listing_sent_after_the_miss_closes() -> None:
    book = PositionBook()
    book.apply_position(pos(seq=5), now=1.0)
    [event] = _closed_on_absence(book)
    assert isinstance(event, PositionClosed)
    assert (event.view.source, book.stats.reconcile_closes) == (Source.REST, 1)


def test_a_listing_sent_before_the_miss_was_known_is_the_same_evidence_again() -> None:
    # Two listings in flight together (a reconnect's and a poll's) can lag alike.
    book = PositionBook()
    book.apply_position(pos(seq=5), now=1.0)
    book.reconcile([], now=3.0, requested_at=2.0)
    assert book.reconcile([], now=3.1, requested_at=2.5) == []
    assert BTC0 in book


def test_a_listed_row_clears_the_miss() -> None:
    book = PositionBook()
    book.apply_position(pos(seq=5), now=1.0)
    book.reconcile([], now=3.0, requested_at=2.0)
    book.reconcile([replace(pos(seq=5), source=Source.REST)], now=4.0, requested_at=3.5)
    assert book.reconcile([], now=6.0, requested_at=5.0) == []  # a first miss again
    assert BTC0 in book


def test_reconcile_does_not_roll_back_newer_stream_state() -> None:
    book = PositionBook()
    book.apply_position(pos(seq=9, size="4"), now=1.0)
    stale = replace(pos(seq=8, size="1"), source=Source.REST)
    assert book.reconcile([stale], now=2.0) == []
    view = book.get(BTC0)
    assert view is not None and view.size == 4
    stale_flat = replace(pos(seq=8, size="0"), source=Source.REST)
    assert book.reconcile([stale_flat], now=3.0) == []
    assert BTC0 in book


def test_reconcile_does_not_miss_what_the_stream_opened_after_the_request() -> None:
    book = PositionBook()
    book.apply_position(pos(symbol="OLDUSDT", seq=1), now=1.0)
    book.apply_position(pos(symbol="NEWUSDT", seq=1), now=5.0)  # arrived in flight
    assert book.reconcile([], now=6.0, requested_at=4.0) == []
    assert book.take_confirmations() == ["OLDUSDT"]
    assert book.stats.reconcile_closes_skipped == 1


def test_partial_reconcile_closes_nothing() -> None:
    book = PositionBook()
    book.apply_position(pos(symbol="AAAUSDT"), now=1.0)
    assert book.reconcile([], now=2.0, complete=False) == []
    assert book.open_symbols() == {"AAAUSDT"}
    assert book.take_confirmations() == []


def test_a_listing_reopens_a_key_closed_on_absence_whatever_its_stamps() -> None:
    # Replaces the test that pinned F1 (a REST row with the closed key's stamps was dropped
    # as stale, so REST could never bring the position back).
    book = PositionBook()
    book.apply_position(pos(seq=5, updated_ms=1_000), now=1.0)
    _closed_on_absence(book)
    listed = replace(pos(seq=5, updated_ms=1_000), source=Source.REST)
    assert _kinds(book.reconcile([listed], now=6.0, requested_at=5.5)) == ["opened"]
    assert BTC0 in book


def test_a_listing_sent_before_the_close_on_absence_cannot_undo_it() -> None:
    # It was in flight while the close was decided: the evidence already weighed.
    book = PositionBook()
    book.apply_position(pos(seq=5, updated_ms=1_000), now=1.0)
    _closed_on_absence(book)  # decided at 5.0
    listed = replace(pos(seq=5, updated_ms=1_000), source=Source.REST)
    assert book.reconcile([listed], now=6.0, requested_at=4.5) == []
    assert BTC0 not in book


def test_after_a_close_on_absence_a_replayed_push_is_stale_but_a_newer_one_reopens() -> None:
    book = PositionBook()
    book.apply_position(pos(seq=5, updated_ms=1_000), now=1.0)
    _closed_on_absence(book)
    assert book.apply_position(pos(seq=5, updated_ms=1_000), now=6.0) == []
    assert _kinds(book.apply_position(pos(seq=6, updated_ms=1_100), now=7.0)) == ["opened"]


def test_an_older_listing_cannot_reopen_a_key_closed_on_absence() -> None:
    book = PositionBook()
    book.apply_position(pos(seq=5, updated_ms=1_000), now=1.0)
    _closed_on_absence(book)
    older = replace(pos(seq=4, updated_ms=900), source=Source.REST)
    assert book.reconcile([older], now=6.0, requested_at=5.5) == []
    assert BTC0 not in book


def test_more_missed_symbols_than_the_limit_are_confirmed_by_one_listing() -> None:
    assert confirmation_requests(["A", "B"], max_symbols=2) == ["A", "B"]
    assert confirmation_requests(["A", "B", "C"], max_symbols=2) == [None]


def test_a_push_created_before_the_answer_that_closed_on_absence_cannot_reopen_it() -> None:
    """Campaign seed 62 (hedge, delayed frames): a push from before the close, newer than the
    last row the book had, arrived after REST had closed the key on absence and re-opened it."""
    book = PositionBook()
    book.apply_position(pos(seq=5, updated_ms=1_000, ts_ms=1_000), now=1.0)
    assert book.reconcile([], now=3.0, requested_at=2.0, response_ts_ms=2_000) == []
    [closed] = book.reconcile([], now=5.0, requested_at=4.0, response_ts_ms=4_000)
    assert isinstance(closed, PositionClosed)
    delayed = pos(seq=6, updated_ms=1_500, ts_ms=1_500)  # created at 1.5 s, before the close
    assert book.apply_position(delayed, now=6.0) == []
    assert BTC0 not in book
    later = pos(seq=7, updated_ms=4_500, ts_ms=4_500)  # a real reopen, after the answer
    assert _kinds(book.apply_position(later, now=7.0)) == ["opened"]
