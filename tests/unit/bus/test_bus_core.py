"""The bus's cores without an event loop: a worker core with marks from the bus and its
fallback sockets, a hub core whose demand comes from outside and whose marks go to a sink."""

from __future__ import annotations

import random
from decimal import Decimal

from bybit_hybrid.bus.core import HubCore, WorkerCore
from bybit_hybrid.protocol.events import MarkUpdated
from bybit_hybrid.protocol.hybrid import PRIVATE, FetchPositions, HybridConfig
from bybit_hybrid.wire.signing import Credentials
from tests.unit.protocol.test_hybrid_core import (
    T0,
    _ack_all,
    _live_private,
    _live_public,
    _push,
    _row,
    _ticker,
)

D = Decimal
PUB = "public-1"


def _worker_with_btc() -> WorkerCore:
    core = WorkerCore(Credentials("key", "secret"), HybridConfig(), random.Random(7))
    _live_private(core)
    core.on_frame(PRIVATE, _push(_row("BTCUSDT")), T0)
    core.take_events()
    core.take_rest_requests()
    return core


def _marks(core: WorkerCore) -> list[Decimal | None]:
    return [e.view.mark_price for e in core.take_events() if isinstance(e, MarkUpdated)]


def test_worker_has_no_public_socket_and_takes_marks_from_the_bus_in_cs_order() -> None:
    core = _worker_with_btc()
    assert core.sockets() == [PRIVATE]
    assert core.book.open_symbols() == {"BTCUSDT"}
    core.on_bus_mark("BTCUSDT", D("65010"), 2, 11, T0 + 1)
    core.on_bus_mark("BTCUSDT", D("65005"), 1, 10, T0 + 1)  # older cs: a stale copy
    core.on_bus_mark("BTCUSDT", D("65020"), 3, 11, T0 + 1)  # same cs, index moved the mark
    core.on_bus_mark("ETHUSDT", D("3000"), 3, 5, T0 + 1)  # not held: ignored
    assert _marks(core) == [D("65010"), D("65020")]
    assert core.mark_frame_at("BTCUSDT") == T0 + 1  # rollout's freshness sees bus marks
    assert "ETHUSDT" not in core.marks.symbols()
    assert core.subscribed_tickers() == 0
    core.bus_subjects = 1  # the worker holds bybit.marks.BTCUSDT
    assert core.subscribed_tickers() == 1


def test_fallback_subscribes_own_sockets_and_return_retires_them_keeping_the_mark() -> None:
    core = _worker_with_btc()
    core.on_bus_mark("BTCUSDT", D("65010"), 2, 11, T0)
    core.use_public(T0 + 1)
    assert core.sockets() == [PRIVATE, PUB]
    _live_public(core, T0 + 1)
    (sub,) = _ack_all(core, PUB, T0 + 1)
    assert sub["op"] == "subscribe" and sub["args"] == ["tickers.BTCUSDT"]
    core.on_frame(PUB, _ticker("BTCUSDT", snapshot=True, cs=12, mark="65030"), T0 + 2)
    assert _marks(core) == [D("65010"), D("65030")]
    # A new position during the fallback gets its ticker on the own socket.
    core.on_frame(PRIVATE, _push(_row("ETHUSDT", seq=7)), T0 + 3)
    (sub,) = _ack_all(core, PUB, T0 + 3)
    assert sub["args"] == ["tickers.ETHUSDT"]
    core.use_bus(T0 + 4)
    sent = _ack_all(core, PUB, T0 + 4)
    assert sorted(a for r in sent if r["op"] == "unsubscribe" for a in r["args"]) == [
        "tickers.BTCUSDT",
        "tickers.ETHUSDT",
    ]
    assert core.close_requested(PUB) is not None
    core.on_close(PUB, T0 + 4, "closed")
    assert core.sockets() == [PRIVATE]
    quote = core.book.mark("BTCUSDT")
    assert quote is not None and quote.mark_price == D("65030")  # kept until the bus moves it
    # A position opened on the bus again subscribes nothing.
    core.on_frame(PRIVATE, _push(_row("SOLUSDT", seq=9)), T0 + 5)
    assert core.sockets() == [PRIVATE]
    # And a second outage brings the socket back with every open symbol.
    core.use_public(T0 + 6)
    _live_public(core, T0 + 6)
    sent = _ack_all(core, PUB, T0 + 6)
    assert sorted(a for r in sent for a in r["args"]) == [
        "tickers.BTCUSDT",
        "tickers.ETHUSDT",
        "tickers.SOLUSDT",
    ]


def test_hub_core_has_no_private_socket_serves_demand_and_sinks_mark_changes() -> None:
    seen: list[tuple[str, Decimal, int, int | None]] = []
    core = HubCore(lambda *mark: seen.append(mark))
    assert core.sockets() == [PUB]
    assert not [r for r in core.take_rest_requests() if isinstance(r, FetchPositions)]
    _live_public(core)
    core.set_demand({"BTCUSDT", "ETHUSDT"}, T0)
    sent = _ack_all(core, PUB)
    assert {r["op"] for r in sent} == {"subscribe"}
    assert sorted(a for r in sent for a in r["args"]) == ["tickers.BTCUSDT", "tickers.ETHUSDT"]
    core.on_frame(PUB, _ticker("BTCUSDT", snapshot=True, cs=10, mark="65100"), T0)
    core.on_frame(PUB, _ticker("BTCUSDT", snapshot=False, cs=11, mark=None), T0)
    core.on_frame(PUB, _ticker("BTCUSDT", snapshot=False, cs=12, mark="65100"), T0)
    core.on_frame(PUB, _ticker("BTCUSDT", snapshot=False, cs=13, mark="65110"), T0)
    assert seen == [("BTCUSDT", D("65100"), 1, 10), ("BTCUSDT", D("65110"), 1, 13)]
    core.set_demand({"ETHUSDT"}, T0 + 1)
    (unsub,) = _ack_all(core, PUB, T0 + 1)
    assert unsub["op"] == "unsubscribe" and unsub["args"] == ["tickers.BTCUSDT"]
    assert core.demand == {"ETHUSDT"}


def test_a_symbol_the_bus_stops_showing_alive_moves_to_the_own_socket_alone_and_back() -> None:
    """Per-symbol bus staleness (rules: a symbol the bus has not shown alive, by a mark or a
    hub's beat naming it, for the bound falls back alone; quiet but named in beats is alive)."""
    stale_s = 3.0
    core = _worker_with_btc()
    core.on_frame(PRIVATE, _push(_row("ETHUSDT", seq=7)), T0)
    core.take_events()
    assert core.judge_bus_symbols(stale_s, T0) == []  # both just held: the full bound ahead
    # BTC's mark never moves, but every beat names it; ETH is named by no hub.
    for t in (1.0, 2.0, 2.9):
        core.note_bus_heard(["BTCUSDT"], T0 + t)
        assert core.judge_bus_symbols(stale_s, T0 + t) == []
    core.note_bus_heard(["BTCUSDT"], T0 + 3.0)
    assert core.judge_bus_symbols(stale_s, T0 + 3.0) == [("ETHUSDT", True)]
    assert core.sockets() == [PRIVATE, PUB]
    _live_public(core, T0 + 3.0)
    (sub,) = _ack_all(core, PUB, T0 + 3.0)
    assert sub["args"] == ["tickers.ETHUSDT"]  # ETH alone: BTC stays on the bus
    assert core.bus_marks and list(core.own_symbols) == ["ETHUSDT"]
    # The rollout judges ETH by its own socket now, BTC by the bus's beats.
    assert core.ticker_heard_at("BTCUSDT") == T0 + 3.0
    # The bus shows ETH alive again, but not for long enough on the own socket yet.
    core.on_bus_mark("ETHUSDT", D("3001"), 5, 20, T0 + 4.0)
    assert core.judge_bus_symbols(stale_s, T0 + 4.0) == []
    core.note_bus_heard(["BTCUSDT", "ETHUSDT"], T0 + 6.0)
    assert core.judge_bus_symbols(stale_s, T0 + 6.0) == [("ETHUSDT", False)]
    sent = _ack_all(core, PUB, T0 + 6.0)
    assert [a for r in sent if r["op"] == "unsubscribe" for a in r["args"]] == ["tickers.ETHUSDT"]
    assert core.close_requested(PUB) is not None  # the last own symbol: the socket goes
    core.on_close(PUB, T0 + 6.0, "closed")
    assert core.sockets() == [PRIVATE]
    quote = core.book.mark("ETHUSDT")
    assert quote is not None and quote.mark_price == D("3001")  # kept across the move


def test_a_closed_symbol_leaves_the_own_socket_and_whole_fallback_clears_per_symbol_state() -> None:
    core = _worker_with_btc()
    core.judge_bus_symbols(1.0, T0)
    assert core.judge_bus_symbols(1.0, T0 + 1.0) == [("BTCUSDT", True)]
    core.on_frame(PRIVATE, _push(_row("BTCUSDT", size="0", side="")), T0 + 1.5)
    core.take_events()
    core.judge_bus_symbols(1.0, T0 + 1.5)
    assert core.own_symbols == {} and core.ticker_refs() == {}
    # A whole-bus fallback serves everything; the per-symbol judge then stands aside.
    core.on_frame(PRIVATE, _push(_row("ETHUSDT", seq=9)), T0 + 2)
    core.use_public(T0 + 2)
    assert core.judge_bus_symbols(1.0, T0 + 9) == []
    assert core.ticker_refs() == {"ETHUSDT": 1}
