"""`BybitHybridStream` against the simulator on the happy path: bootstrap, open/change/close,
hedge mode, mark merging, push de-duplication, ticker demand, clean shutdown, the §4 contract.
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

from bybit_hybrid.protocol.events import PositionChanged
from bybit_hybrid.protocol.hybrid import PRIVATE, Reconciled, RestFailed
from bybit_hybrid.sim import ConnKind, EventKind, PositionMode, RestErrorMode, SimServer
from tests.integration import stream_harness
from tests.integration.stream_harness import (
    PUBLIC,
    Recorder,
    StreamHarness,
    assert_contract,
    is_server_task,
    start_stream,
)

# Every test here runs once per WebSocket backend (picows, the default, and aiohttp).
from tests.support import CONTRACT_KEYS, UNIT_S, wait_for

D = Decimal
# Every test here runs once per WebSocket backend (picows, the default, and aiohttp).
ws_backend_name = stream_harness.ws_backend_each


async def test_bootstrap_emits_open_positions_from_rest_then_live_marks(h: StreamHarness) -> None:
    sim = h.sim
    boot = h.datas()[:2]
    assert [(d["symbol"], d["source"], d["status"]) for d in boot] == [
        ("BTCUSDT", "rest", "open"),
        ("ETHUSDT", "rest", "open"),
    ]
    opened = {e.symbol: e.details for e in sim.exchange.history.of_kind(EventKind.OPEN)}
    for d in boot:
        details = opened[d["symbol"]]
        assert (d["side"], d["size"], d["entry_price"]) == (
            details["side"],
            D(details["size"]),
            D(details["entry_price"]),
        )
        assert d["position_idx"] == 0
        assert d["seq"] == details["seq"]
    # Ticker topics exactly for the open symbols, confirmed on both sides of the socket.
    assert h.sim_ticker_topics() == {"tickers.BTCUSDT", "tickers.ETHUSDT"}
    assert [c.topics for c in h.sim_conns(ConnKind.PRIVATE)] == [{"position"}]
    stats = h.stream.get_stats()
    assert stats["subscribed_tickers"] == 2
    assert stats["active_positions"] == 2
    assert stats["connected_private"] and stats["connected_public"]
    await h.prove_marks_flow(["BTCUSDT", "ETHUSDT"])
    h.assert_in_sync()


async def test_open_change_close_through_the_private_stream(h: StreamHarness) -> None:
    sim = h.sim
    start = len(h.delivered)
    sim.pause_ticks("SOLUSDT")
    await sim.open_position("SOLUSDT", "Buy", D("0.5"))
    opened = await h.wait_delivered(lambda d: d["symbol"] == "SOLUSDT", start, what="SOL open")
    record = sim.exchange.history.of_kind(EventKind.OPEN)[-1].details
    assert opened.data["source"] == "position"
    assert opened.data["status"] == "open"
    assert (opened.data["side"], opened.data["size"], opened.data["entry_price"]) == (
        "Buy",
        D("0.5"),
        D(record["entry_price"]),
    )
    assert opened.data["seq"] == record["seq"]

    # Its ticker is subscribed (on the simulator too), and its marks revalue the position.
    await h.wait_live(what="tickers.SOLUSDT confirmed")
    assert h.sim_ticker_topics() == {"tickers.BTCUSDT", "tickers.ETHUSDT", "tickers.SOLUSDT"}
    entry = opened.data["entry_price"]
    since = len(h.delivered)
    await sim.set_mark("SOLUSDT", entry + D("2"))
    marked = await h.wait_delivered(
        lambda d: d["symbol"] == "SOLUSDT" and d["source"] == "ticker", since, what="SOL mark"
    )
    assert marked.data["mark_price"] == entry + D("2")
    assert marked.data["unrealized_pnl"] == D("2") * D("0.5")
    assert marked.data["size"] == D("0.5")

    # A stop-loss edit is one change event; it keeps the seq of the last trade (§6.4).
    since = len(h.delivered)
    await sim.change_position("SOLUSDT", stop_loss=entry - D("10"))
    changed = await h.wait_delivered(
        lambda d: d["symbol"] == "SOLUSDT" and d["source"] == "position", since, what="SOL SL"
    )
    assert changed.data["stop_loss"] == entry - D("10")
    assert changed.data["status"] == "open"
    assert changed.data["seq"] == opened.data["seq"]

    since = len(h.delivered)
    await sim.close_position("SOLUSDT")
    closed = await h.wait_delivered(
        lambda d: d["symbol"] == "SOLUSDT" and d["status"] == "closed", since, what="SOL close"
    )
    assert closed.data["source"] == "position"
    assert closed.data["size"] == 0
    assert (closed.data["side"], closed.data["entry_price"]) == ("Buy", entry)
    assert closed.data["mark_price"] == entry + D("2")
    assert closed.data["unrealized_pnl"] == 0
    assert closed.data["stop_loss"] == entry - D("10")

    # Unsubscribed once closed: gone from the stat and from the simulator's connection.
    await h.wait_live(what="tickers.SOLUSDT released")
    assert h.sim_ticker_topics() == {"tickers.BTCUSDT", "tickers.ETHUSDT"}
    assert h.stream.get_stats()["unsubscriptions"] == 1
    after_close = len(h.delivered)
    sim.resume_ticks("SOLUSDT")
    await h.prove_marks_flow(["BTCUSDT"])
    await sim.set_mark("SOLUSDT", entry + D("5"))
    await h.prove_marks_flow(["ETHUSDT"])
    assert [d for d in h.datas(after_close) if d["symbol"] == "SOLUSDT"] == []
    h.assert_in_sync()


async def test_hedge_mode_keeps_both_sides_apart(h: StreamHarness) -> None:
    sim = h.sim
    await sim.set_position_mode("SOLUSDT", PositionMode.HEDGE)
    sim.pause_ticks("SOLUSDT")
    subscriptions = h.stream.get_stats()["subscriptions"]
    start = len(h.delivered)
    await sim.open_position("SOLUSDT", "Buy", D("0.3"), position_idx=1)
    await sim.open_position("SOLUSDT", "Sell", D("0.7"), position_idx=2)
    await wait_for(lambda: len(h.position_events(start, "SOLUSDT")) >= 2, 3 * UNIT_S, "both sides")
    await h.wait_live(what="tickers.SOLUSDT confirmed")
    opens = h.position_events(start, "SOLUSDT")
    assert [(d["position_idx"], d["side"], d["size"], d["status"]) for d in opens] == [
        (1, "Buy", D("0.3"), "open"),
        (2, "Sell", D("0.7"), "open"),
    ]
    # One symbol, one ticker topic, whatever the number of positions in it.
    assert h.stream.get_stats()["subscriptions"] == subscriptions + 1
    assert h.stream.get_stats()["active_positions"] == 4

    since = len(h.delivered)
    mark = opens[0]["entry_price"] + D("1")
    await sim.set_mark("SOLUSDT", mark)
    await wait_for(lambda: len(h.ticker_marks("SOLUSDT", since)) >= 2, 3 * UNIT_S, "both marks")
    marks = [d for d in h.datas(since) if d["symbol"] == "SOLUSDT"]
    assert [(d["position_idx"], d["mark_price"]) for d in marks] == [(1, mark), (2, mark)]
    long_pnl, short_pnl = (d["unrealized_pnl"] for d in marks)
    assert long_pnl == (mark - opens[0]["entry_price"]) * D("0.3")
    assert short_pnl == (opens[1]["entry_price"] - mark) * D("0.7")

    since = len(h.delivered)
    await sim.close_position("SOLUSDT", position_idx=1)
    closed = await h.wait_delivered(
        lambda d: d["symbol"] == "SOLUSDT" and d["status"] == "closed", since, what="long close"
    )
    assert (closed.data["position_idx"], closed.data["side"]) == (1, "Buy")
    assert [k.idx for k in h.stream.core.book.open_keys() if k.symbol == "SOLUSDT"] == [2]
    # The short side still needs the ticker.
    assert h.stream.get_stats()["subscribed_tickers"] == 3
    assert "tickers.SOLUSDT" in h.sim_ticker_topics()

    await sim.close_position("SOLUSDT", position_idx=2)
    await wait_for(lambda: h.stream.get_stats()["active_positions"] == 2, 3 * UNIT_S, "flat")
    await h.wait_live(what="tickers.SOLUSDT released")
    assert "tickers.SOLUSDT" not in h.sim_ticker_topics()
    closes = [d for d in h.position_events(since, "SOLUSDT") if d["status"] == "closed"]
    assert [(d["position_idx"], d["side"], d["size"]) for d in closes] == [
        (1, "Buy", 0),
        (2, "Sell", 0),
    ]
    h.assert_in_sync()


async def test_ticker_delta_without_mark_price_changes_nothing(h: StreamHarness) -> None:
    sim = h.sim
    sim.pause_ticks("BTCUSDT")
    await h.prove_marks_flow(["BTCUSDT"])
    sim.pause_ticks("BTCUSDT")
    before = h.stream.core.book.get(h.stream.core.book.open_keys()[0])
    assert before is not None and before.key.symbol == "BTCUSDT"
    start = len(h.delivered)
    frames = h.stream.get_stats()["ticker_updates"]
    last = sim.exchange.prices.last("BTCUSDT")
    # Trade-only deltas: lastPrice and book fields move, markPrice is absent (BYBIT_V5 §5.1).
    for step in range(1, 6):
        await sim.set_prices("BTCUSDT", last=last + step * D("0.10"))
    final_last = last + 5 * D("0.10")

    def all_applied() -> bool:
        state = h.stream.core.marks.state("BTCUSDT")
        return state is not None and state.last_price == final_last

    await wait_for(all_applied, 3 * UNIT_S, "the five trade deltas")
    assert h.stream.get_stats()["ticker_updates"] >= frames + 5
    assert [d for d in h.datas(start) if d["symbol"] == "BTCUSDT"] == []
    after = h.stream.core.book.get(before.key)
    assert after is not None and after.mark_price == before.mark_price is not None
    assert h.stream.core.marks.mark("BTCUSDT") == before.mark_price

    # Control: a delta that does carry markPrice is one event.
    await sim.set_mark("BTCUSDT", before.mark_price + D("0.10"))
    await wait_for(lambda: len(h.ticker_marks("BTCUSDT", start)) >= 1, 3 * UNIT_S, "mark")
    assert h.ticker_marks("BTCUSDT", start) == [before.mark_price + D("0.10")]
    sim.resume_ticks("BTCUSDT")


async def test_pushes_without_a_change_are_deduplicated(h: StreamHarness) -> None:
    sim = h.sim
    book_stats = h.stream.core.book.stats
    duplicates = book_stats.duplicates_dropped
    pushes = h.stream.get_stats()["position_updates"]
    start = len(h.delivered)
    # Order actions that change nothing still push the position, with the same seq (§8.11).
    for _ in range(3):
        await sim.touch("BTCUSDT")
    await wait_for(
        lambda: book_stats.duplicates_dropped == duplicates + 3, 3 * UNIT_S, "three duplicates"
    )
    assert h.stream.get_stats()["position_updates"] == pushes + 3
    assert h.non_ticker(start) == []

    # Control: the same seq with a real edit (a new stop-loss) is not a duplicate.
    stop = sim.exchange.prices.mark("BTCUSDT") - D("1000")
    await sim.change_position("BTCUSDT", stop_loss=stop)
    changed = await h.wait_delivered(lambda d: d["source"] == "position", start, what="SL edit")
    assert (changed.data["symbol"], changed.data["stop_loss"]) == ("BTCUSDT", stop)
    await sim.touch("BTCUSDT")
    await wait_for(
        lambda: book_stats.duplicates_dropped == duplicates + 4, 3 * UNIT_S, "fourth duplicate"
    )
    assert len(h.non_ticker(start)) == 1
    changes = [e for e in h.of_type(PositionChanged) if e.key.symbol == "BTCUSDT"]
    assert [e.changed for e in changes] == [frozenset({"stop_loss"})]


async def test_stop_leaves_no_task_and_no_socket(sim: SimServer) -> None:
    before = asyncio.all_tasks()
    h = await start_stream(sim)
    assert len(sim.connections) == 2
    assert len(asyncio.all_tasks() - before) > 0
    await h.stream.stop()
    leftover = asyncio.all_tasks() - before - {asyncio.current_task()}
    # Only the simulator's own per-connection handlers may still be winding down.
    assert all(is_server_task(t) for t in leftover), leftover
    await wait_for(lambda: not sim.connections, 2 * UNIT_S, "sim sockets closed")
    await wait_for(lambda: asyncio.all_tasks() == before, 2 * UNIT_S, "server handlers done")
    stats = h.stream.get_stats()
    assert stats["running"] is False
    assert stats["handler_errors"] == 0
    await h.stream.stop()  # a second stop is harmless
    await h.close()


async def test_every_event_follows_the_contract(h: StreamHarness) -> None:
    """Opens (REST and stream), marks, changes and closes, each with exactly the §4 keys."""
    sim = h.sim
    start = len(h.delivered)
    await sim.open_position("XRPUSDT", "Sell", D("10"))
    await h.wait_delivered(lambda d: d["symbol"] == "XRPUSDT", start, what="XRP open")
    await h.wait_live()
    await h.prove_marks_flow(["XRPUSDT"])
    await sim.change_position("XRPUSDT", take_profit=D("0.1000"))
    await sim.close_position("XRPUSDT")
    closed = await h.wait_delivered(
        lambda d: d["symbol"] == "XRPUSDT" and d["status"] == "closed", start, what="XRP close"
    )
    sources = {d["source"] for d in h.datas()}
    assert sources == {"rest", "ticker", "position"}
    for data in h.datas():
        assert data.keys() == CONTRACT_KEYS
        assert_contract(data)
    assert closed.data["side"] == "Sell"
    assert closed.data["size"] == D(0)
    assert closed.data["take_profit"] == D("0.1000")
    assert closed.data["entry_price"] == D(
        sim.exchange.history.of_kind(EventKind.OPEN)[-1].details["entry_price"]
    )
    await h.wait_live(what="tickers.XRPUSDT released")
    core = h.stream.core
    assert core.session(PRIVATE).subscriptions.confirmed == {"position"}
    assert core.session(PUBLIC).subscriptions.confirmed == {"tickers.BTCUSDT", "tickers.ETHUSDT"}
    h.assert_in_sync()


async def test_slow_consumer_gets_every_lifecycle_event_in_order(sim: SimServer) -> None:
    """Marks are conflated for a slow handler; opens, changes and closes never are."""
    h = await start_stream(sim, rec=Recorder(work_s=0.1 * UNIT_S))
    try:
        for symbol in ("BTCUSDT", "ETHUSDT"):
            sim.set_trend(symbol, 3)  # a mark move on every tick
        await sim.open_position("SOLUSDT", "Buy", D("0.5"))
        await sim.open_position("XRPUSDT", "Sell", D("30"))
        await sim.change_position("SOLUSDT", size=D("0.8"))
        await sim.close_position("SOLUSDT")
        await sim.open_position("XRPUSDT", "Buy", D("50"))  # one-way flip: close + open
        await sim.close_position("ETHUSDT")
        await wait_for(
            lambda: h.lifecycle() == h.exchange_lifecycle(), 5 * UNIT_S, "every open and close"
        )
        assert h.stream.get_stats()["marks_conflated"] > 0
        lifecycle = [
            (d["symbol"], d["status"], d["size"], d["side"])
            for d in h.non_ticker(2)
            if d["source"] == "position"
        ]
        assert lifecycle == [
            ("SOLUSDT", "open", D("0.5"), "Buy"),
            ("XRPUSDT", "open", D("30"), "Sell"),
            ("SOLUSDT", "open", D("0.8"), "Buy"),
            ("SOLUSDT", "closed", 0, "Buy"),
            ("XRPUSDT", "closed", 0, "Sell"),
            ("XRPUSDT", "open", D("20"), "Buy"),
            ("ETHUSDT", "closed", 0, "Sell"),
        ]
        await h.wait_live()
        h.assert_in_sync()
    finally:
        await h.close()


async def test_failing_consumer_is_isolated(sim: SimServer) -> None:
    """A handler that raises is counted and logged; the next events still arrive."""
    h = await start_stream(sim, rec=Recorder(fail=lambda d: d["symbol"] == "ETHUSDT"))
    try:
        start = len(h.delivered)
        await h.prove_marks_flow(["ETHUSDT", "BTCUSDT"])
        await sim.close_position("ETHUSDT")
        await sim.open_position("SOLUSDT", "Buy", D("0.5"))
        await h.wait_delivered(lambda d: d["symbol"] == "SOLUSDT", start, what="SOL after")
        assert h.rec.raised >= 3  # bootstrap open, the forced mark, the close
        assert h.stream.get_stats()["handler_errors"] == h.rec.raised
        await h.wait_live()
        h.assert_in_sync()
    finally:
        await h.close()


async def test_restart_waits_for_a_new_bootstrap(h: StreamHarness) -> None:
    """stop() then start() is a new run: not ready until the new book is bootstrapped."""
    await h.stream.stop()
    before = len(h.delivered)
    restarted_at = time.monotonic()
    h.sim.faults.rest_errors(RestErrorMode.SERVER_ERROR, 8, "/v5/position/list")
    await h.stream.start()
    assert h.stream.get_status()["ready"] is False
    await h.stream.wait_ready(6 * UNIT_S)
    assert h.of_type(Reconciled, restarted_at), "ready means a snapshot of the new run"
    assert h.of_type(RestFailed, restarted_at), "the bootstrap was retried"
    # The new book opens each position afresh from REST before anything else about it.
    first: dict[str, tuple[str, str]] = {}
    for d in h.datas(before):
        first.setdefault(d["symbol"], (d["source"], d["status"]))
    assert first == {"BTCUSDT": ("rest", "open"), "ETHUSDT": ("rest", "open")}
    await h.wait_live()
    await h.prove_marks_flow(["BTCUSDT", "ETHUSDT"])
