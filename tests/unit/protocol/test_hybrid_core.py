"""HybridCore driven with recorded frames and a manual clock: no event loop, no sockets."""

from __future__ import annotations

import json
import random
from decimal import Decimal
from typing import Any

import pytest

from bybit_hybrid.protocol.domain import PositionKey, Socket, Source, TickerUpdate
from bybit_hybrid.protocol.events import (
    MarkUpdated,
    PositionChanged,
    PositionClosed,
    PositionOpened,
)
from bybit_hybrid.protocol.hybrid import (
    PRIVATE,
    BadFrame,
    FetchPositions,
    FetchTickers,
    HybridConfig,
    HybridCore,
    Reconciled,
    RestFailed,
)
from bybit_hybrid.protocol.positions import CONFIRM_SYMBOLS_MAX
from bybit_hybrid.protocol.session import SessionState
from bybit_hybrid.wire.convert import position_from_ws
from bybit_hybrid.wire.messages import WsPosition
from bybit_hybrid.wire.signing import Credentials
from tests.fixtures import frame

T0 = 1_762_199_126.0
PUB = "public-1"


def _core(**config: Any) -> HybridCore:
    return HybridCore(Credentials("key", "secret"), HybridConfig(**config), random.Random(7))


def _sent(core: HybridCore, name: str) -> list[dict[str, Any]]:
    return [json.loads(f) for f in core.take_outbox(name)]


def _ack(core: HybridCore, name: str, request: dict[str, Any], now: float) -> None:
    reply = {
        "success": True,
        "ret_msg": "",
        "op": request["op"],
        "conn_id": "c",
        "req_id": request["req_id"],
    }
    core.on_frame(name, json.dumps(reply), now)


def _live_private(core: HybridCore, now: float = T0) -> None:
    core.start_connect(PRIVATE, now)
    core.on_open(PRIVATE, now)
    (auth,) = _sent(core, PRIVATE)
    assert auth["op"] == "auth"
    core.on_frame(PRIVATE, frame("F01"), now)
    (sub,) = _sent(core, PRIVATE)
    assert sub["args"] == ["position"]
    _ack(core, PRIVATE, sub, now)


def _live_public(core: HybridCore, now: float = T0, name: str = PUB) -> None:
    core.start_connect(name, now)
    core.on_open(name, now)


def _ack_all(core: HybridCore, name: str, now: float = T0) -> list[dict[str, Any]]:
    sent = _sent(core, name)
    for request in sent:
        if request["op"] in ("subscribe", "unsubscribe"):
            _ack(core, name, request, now)
    return sent


def _row(
    symbol: str = "BTCUSDT",
    idx: int = 0,
    *,
    side: str = "Buy",
    size: str = "0.01",
    seq: int = 100,
    entry: str = "65000",
    updated: int = 1,
) -> dict[str, Any]:
    return {
        "symbol": symbol,
        "positionIdx": idx,
        "side": side,
        "size": size,
        "entryPrice": entry,
        "markPrice": entry,
        "seq": seq,
        "updatedTime": str(updated),
        "stopLoss": "",
        "takeProfit": "0",
        "leverage": "10",
        "positionStatus": "Normal",
    }


def _push(*rows: dict[str, Any], creation_ms: int = 1) -> str:
    return json.dumps(
        {"id": "x", "topic": "position", "creationTime": creation_ms, "data": list(rows)}
    )


def _ticker(symbol: str, *, snapshot: bool, cs: int, mark: str | None) -> str:
    data: dict[str, str] = {"symbol": symbol}
    if mark is not None:
        data["markPrice"] = mark
    return json.dumps(
        {
            "topic": f"tickers.{symbol}",
            "type": "snapshot" if snapshot else "delta",
            "data": data,
            "cs": cs,
            "ts": 1,
        }
    )


def test_start_wants_both_sockets_and_a_bootstrap() -> None:
    core = _core()
    assert core.sockets() == [PRIVATE, PUB]
    assert core.kind(PRIVATE) is Socket.PRIVATE and core.kind(PUB) is Socket.PUBLIC
    (request,) = core.take_rest_requests()
    assert isinstance(request, FetchPositions) and request.reason == "bootstrap"


def test_auth_before_subscribe_then_reconcile_once_position_is_confirmed() -> None:
    core = _core()
    core.take_rest_requests()
    core.start_connect(PRIVATE, T0)
    core.on_open(PRIVATE, T0)
    assert [f["op"] for f in _sent(core, PRIVATE)] == ["auth"]
    core.tick(T0 + 1)
    assert _sent(core, PRIVATE) == []  # nothing until the auth ack
    core.on_frame(PRIVATE, frame("F01"), T0 + 1)
    (sub,) = _sent(core, PRIVATE)
    assert sub["op"] == "subscribe" and sub["args"] == ["position"]
    assert core.take_rest_requests() == []
    _ack(core, PRIVATE, sub, T0 + 1)
    (request,) = core.take_rest_requests()
    assert isinstance(request, FetchPositions) and request.reason == "reconnect"
    assert core.session(PRIVATE).state is SessionState.LIVE


def test_rejected_auth_closes_and_backs_off() -> None:
    core = _core()
    core.start_connect(PRIVATE, T0)
    core.on_open(PRIVATE, T0)
    core.take_outbox(PRIVATE)
    core.on_frame(PRIVATE, frame("F02"), T0)
    assert core.close_requested(PRIVATE) is not None
    core.on_close(PRIVATE, T0, "auth rejected")
    reconnect_at = core.reconnect_at(PRIVATE)
    assert reconnect_at is not None and reconnect_at > T0


def test_open_subscribes_ticker_and_seeds_mark_then_close_unsubscribes() -> None:
    core = _core()
    core.take_rest_requests()
    _live_private(core)
    _live_public(core)
    core.take_rest_requests()
    core.take_events()
    core.on_frame(PRIVATE, frame("F13"), T0)
    events = [e for e in core.take_events() if isinstance(e, PositionOpened)]
    assert [e.key for e in events] == [PositionKey("BTCUSDT", 0)]
    assert events[0].view.source is Source.POSITION
    assert events[0].view.entry_price == Decimal("65000")
    (sub,) = _ack_all(core, PUB)
    assert sub["op"] == "subscribe" and sub["args"] == ["tickers.BTCUSDT"]
    (seed,) = core.take_rest_requests()
    assert isinstance(seed, FetchTickers) and seed.symbols == ("BTCUSDT",)
    assert core.subscribed_tickers() == 1

    core.on_frame(PRIVATE, _push(_row(size="0", side="", seq=325852190775)), T0 + 1)
    (closed,) = [e for e in core.take_events() if isinstance(e, PositionClosed)]
    assert closed.view.side is not None and closed.view.size == 0
    (unsub,) = _sent(core, PUB)
    assert unsub["op"] == "unsubscribe" and unsub["args"] == ["tickers.BTCUSDT"]


def test_ticker_snapshot_then_delta_without_mark_is_silent() -> None:
    core = _core()
    _live_private(core)
    _live_public(core)
    core.on_frame(PRIVATE, frame("F13"), T0)
    _ack_all(core, PUB)
    core.take_events()
    core.on_frame(PUB, _ticker("BTCUSDT", snapshot=True, cs=10, mark="65100"), T0 + 0.1)
    (mark,) = core.take_events()
    assert isinstance(mark, MarkUpdated)
    assert mark.view.mark_price == Decimal("65100")
    assert mark.view.unrealised_pnl == Decimal("1.00")  # (65100 - 65000) * 0.01
    assert mark.view.source is Source.TICKER and mark.view.cs == 10
    core.on_frame(PUB, frame("F11").replace(b"AAVEUSDT", b"BTCUSDT"), T0 + 0.2)
    assert core.take_events() == []  # bid/ask only: the mark is unchanged
    assert core.marks.mark("BTCUSDT") == Decimal("65100")
    assert core.stats.ticker_updates == 2


def test_rest_seed_gives_a_mark_before_the_first_ticker_frame() -> None:
    core = _core()
    _live_private(core)
    core.take_rest_requests()
    core.on_frame(PRIVATE, frame("F13"), T0)
    core.take_events()
    (seed,) = core.take_rest_requests()
    update = TickerUpdate("BTCUSDT", True, Decimal("64990"), None, None, None, 5)
    core.on_tickers(seed.request_id, [update], T0 + 0.01)
    (mark,) = core.take_events()
    assert isinstance(mark, MarkUpdated) and mark.view.source is Source.REST
    assert mark.view.mark_price == Decimal("64990")


def test_hedge_mode_two_keys_one_ticker_refcounted() -> None:
    core = _core()
    _live_private(core)
    _live_public(core)
    core.take_events()
    core.on_frame(PRIVATE, frame("F14"), T0)
    opened = [e.key for e in core.take_events() if isinstance(e, PositionOpened)]
    assert opened == [PositionKey("ETHUSDT", 1), PositionKey("ETHUSDT", 2)]
    (sub,) = _ack_all(core, PUB)
    assert sub["args"] == ["tickers.ETHUSDT"]
    flat_buy = _row("ETHUSDT", 1, side="", size="0", seq=140612148849401)
    core.on_frame(PRIVATE, _push(flat_buy), T0 + 1)
    assert _sent(core, PUB) == []  # the Sell side still holds the ticker
    flat_sell = _row("ETHUSDT", 2, side="", size="0", seq=140612148849402)
    core.on_frame(PRIVATE, _push(flat_sell), T0 + 2)
    (unsub,) = _sent(core, PUB)
    assert unsub["op"] == "unsubscribe"


def test_flip_in_one_push_causes_no_ticker_churn() -> None:
    core = _core()
    _live_private(core)
    _live_public(core)
    core.on_frame(PRIVATE, _push(_row(seq=1)), T0)
    _ack_all(core, PUB)
    core.take_events()
    core.on_frame(PRIVATE, _push(_row(side="Sell", size="0.02", seq=2)), T0 + 1)
    kinds = [type(e) for e in core.take_events()]
    assert kinds == [PositionClosed, PositionOpened]
    assert _sent(core, PUB) == []


def test_stale_and_duplicate_pushes_are_dropped() -> None:
    core = _core()
    _live_private(core)
    core.on_frame(PRIVATE, _push(_row(seq=5, updated=10)), T0)
    core.take_events()
    core.on_frame(PRIVATE, _push(_row(seq=5, updated=10)), T0)  # order action, no change
    core.on_frame(PRIVATE, _push(_row(seq=4, size="9", updated=11)), T0)  # older seq
    assert [e for e in core.take_events() if isinstance(e, PositionChanged)] == []
    core.on_frame(PRIVATE, _push(_row(seq=5, size="0.02", updated=12)), T0)
    (changed,) = [e for e in core.take_events() if isinstance(e, PositionChanged)]
    assert "size" in changed.changed


def test_reconnect_restores_subscriptions_and_reconciles_the_outage() -> None:
    core = _core()
    core.take_rest_requests()
    _live_private(core)
    _live_public(core)
    core.take_rest_requests()
    core.on_frame(PRIVATE, _push(_row("BTCUSDT", seq=1)), T0)
    _ack_all(core, PUB)
    core.take_rest_requests()
    core.take_events()
    # Both sockets drop; meanwhile BTC closes and SOL opens on the exchange.
    core.on_close(PRIVATE, T0 + 1, "dropped")
    core.on_close(PUB, T0 + 1, "dropped")
    later = T0 + 100
    _live_private(core, later)
    (reconcile,) = core.take_rest_requests()
    assert isinstance(reconcile, FetchPositions)
    _live_public(core, later)
    (resub,) = _sent(core, PUB)
    assert resub["op"] == "subscribe" and resub["args"] == ["tickers.BTCUSDT"]
    _ack(core, PUB, resub, later)
    sol = position_from_ws(WsPosition(**_row("SOLUSDT", seq=9, entry="150")), 2)
    core.on_positions(
        reconcile.request_id, [sol], requested_at=later, response_ts_ms=2, now=later + 0.05
    )
    events = core.take_events()
    assert {(type(e).__name__, e.key.symbol) for e in events if hasattr(e, "key")} == {
        ("PositionOpened", "SOLUSDT"),
    }
    assert any(isinstance(e, Reconciled) and e.reason == "reconnect" for e in events)
    # BTC is missing from the answer: evidence, not proof (issue 19 F1). The core asks
    # `position/list?symbol=BTCUSDT` at once, whose flat row (a newer seq) closes it.
    (confirm,) = [r for r in core.take_rest_requests() if isinstance(r, FetchPositions)]
    assert (confirm.reason, confirm.symbol) == ("confirm", "BTCUSDT")
    flat = position_from_ws(WsPosition(**_row("BTCUSDT", seq=2, size="0", side="")), 3)
    core.on_positions(
        confirm.request_id, [flat], requested_at=later + 0.06, response_ts_ms=3, now=later + 0.1
    )
    events = core.take_events()
    assert [(type(e).__name__, e.key.symbol) for e in events if hasattr(e, "key")] == [
        ("PositionClosed", "BTCUSDT"),
    ]
    assert not any(isinstance(e, Reconciled) for e in events)  # one symbol is no reconcile
    moves = {(f["op"], tuple(f["args"])) for f in _sent(core, PUB)}
    assert moves == {("unsubscribe", ("tickers.BTCUSDT",)), ("subscribe", ("tickers.SOLUSDT",))}
    assert core.stats.reconnections == 2


def test_bad_frames_are_counted_and_the_socket_stays_up() -> None:
    core = _core()
    _live_public(core)
    core.take_events()
    core.on_frame(PUB, b"{not json", T0)
    core.on_frame(
        PUB,
        b'{"topic":"tickers.X","type":"delta","data":{"symbol":"X","markPrice":"abc"},"ts":1}',
        T0,
    )
    bad = [e for e in core.take_events() if isinstance(e, BadFrame)]
    assert len(bad) == 2 and "markPrice" in bad[1].error
    assert core.stats.bad_frames[PUB] == 2
    assert core.close_requested(PUB) is None
    assert core.session(PUB).state is SessionState.LIVE


def test_one_bad_row_does_not_cost_the_others_in_a_push() -> None:
    core = _core()
    _live_private(core)
    core.take_events()
    good = _row("ETHUSDT", seq=3)
    bad = _row("BTCUSDT", seq=3, size="lots")
    core.on_frame(PRIVATE, _push(bad, good), T0)
    events = core.take_events()
    assert [e.key.symbol for e in events if isinstance(e, PositionOpened)] == ["ETHUSDT"]
    assert any(isinstance(e, BadFrame) and "BTCUSDT" in e.error for e in events)


def test_rest_failure_is_retried_after_backoff() -> None:
    core = _core()
    (bootstrap,) = core.take_rest_requests()
    core.on_rest_failed(bootstrap.request_id, "http 502", T0, permanent=False)
    (failed,) = [e for e in core.take_events() if isinstance(e, RestFailed)]
    assert failed.retry_in_s > 0 and not failed.permanent
    assert core.take_rest_requests() == []
    deadline = core.next_deadline()
    assert deadline is not None and deadline <= T0 + failed.retry_in_s
    core.tick(T0 + failed.retry_in_s)
    (retry,) = core.take_rest_requests()
    assert retry == bootstrap


@pytest.mark.parametrize("limit", [40, 60])
def test_tickers_shard_over_public_connections_under_the_args_limit(limit: int) -> None:
    core = _core(max_args_chars=limit)
    _live_private(core)
    symbols = [f"SYM{i:03d}USDT" for i in range(6)]  # "tickers.SYM000USDT" is 18 chars
    core.on_frame(PRIVATE, _push(*(_row(s, seq=i + 1) for i, s in enumerate(symbols))), T0)
    per_shard = limit // 18
    expected = -(-len(symbols) // per_shard)
    publics = [n for n in core.sockets() if n != PRIVATE]
    assert len(publics) == expected
    for name in publics:
        topics = core.session(name).subscriptions.desired
        assert sum(len(t) for t in topics) <= limit
        _live_public(core, T0, name)  # connected shards must close before they retire
    # Closing every position retires the extra shards, keeping public-1.
    flat = (_row(s, size="0", side="", seq=50 + i) for i, s in enumerate(symbols))
    core.on_frame(PRIVATE, _push(*flat), T0 + 1)
    for name in publics[1:]:
        assert core.close_requested(name) == "shard empty"
        core.on_close(name, T0 + 1, "closed by client")
        assert core.is_retired(name)
    assert [n for n in core.sockets() if n != PRIVATE] == [PUB]


def test_status_and_stats_report_sockets_positions_and_mark_age() -> None:
    core = _core()
    _live_private(core)
    _live_public(core)
    core.on_frame(PRIVATE, frame("F13"), T0)
    _ack_all(core, PUB)
    core.on_frame(PUB, _ticker("BTCUSDT", snapshot=True, cs=1, mark="65001"), T0 + 1)
    status = core.status(T0 + 3)
    assert status["sockets"]["private"]["state"] == "live"  # type: ignore[index]
    positions = status["positions"]
    assert isinstance(positions, list)
    (position,) = positions
    assert position["mark_price"] == "65001" and position["mark_age_s"] == 2.0
    assert core.is_connected(Socket.PRIVATE) and core.is_connected(Socket.PUBLIC)
    assert core.stats.position_updates == 1


def test_on_frame_says_when_only_events_came_out() -> None:
    """False means "take events, nothing else": the runner then skips its output pass."""
    core = _core()
    _live_private(core)
    _live_public(core)
    assert core.on_frame(PRIVATE, frame("F13"), T0) is True  # an open: demand changed
    _ack_all(core, PUB)
    core.take_events()
    core.take_rest_requests()
    steady = _ticker("BTCUSDT", snapshot=True, cs=10, mark="65100")
    assert core.on_frame(PUB, steady, T0 + 0.1) is False
    assert core.take_outbox(PUB) == [] and core.take_rest_requests() == []
    assert core.close_requested(PUB) is None
    assert [type(e) for e in core.take_events()] == [MarkUpdated]
    assert core.on_frame(PUB, b"{not json", T0 + 0.2) is True  # the general path ran
    # A socket gone quiet turns STALE; its next frame is a state change to carry out.
    stale_at = T0 + 0.2 + core.config.session.stale_after_s + 0.1
    core.tick(stale_at)
    assert core.session(PUB).state is SessionState.STALE
    core.take_outbox(PUB)
    later = _ticker("BTCUSDT", snapshot=False, cs=11, mark="65101")
    assert core.on_frame(PUB, later, stale_at + 0.1) is True
    assert core.session(PUB).state is SessionState.LIVE


def test_a_ticker_frame_in_a_cutover_only_produces_events_too() -> None:
    core = _core(stream_symbol=lambda symbol: True)
    _live_private(core)
    _live_public(core)
    core.on_frame(PRIVATE, frame("F13"), T0)
    _ack_all(core, PUB)
    core.take_rest_requests()
    assert core.on_frame(PUB, _ticker("BTCUSDT", snapshot=True, cs=10, mark="1"), T0) is False
    assert core.take_outbox(PUB) == [] and core.take_rest_requests() == []


def _cutover_core(positions: int, calls: list[str]) -> HybridCore:
    """A cutover core holding `positions` symbols (half streamed), `calls` logs every routing
    question it asks."""

    def stream_symbol(symbol: str) -> bool:
        calls.append(symbol)
        return int(symbol[1:5]) % 2 == 0

    core = _core(stream_symbol=stream_symbol)
    _live_private(core)
    _live_public(core)
    rows = [
        position_from_ws(WsPosition(**_row(f"S{i:04d}USDT", seq=1)), 1) for i in range(positions)
    ]
    for request in core.take_rest_requests():
        core.on_positions(request.request_id, rows, requested_at=T0, response_ts_ms=1, now=T0)
    _ack_all(core, PUB)
    core.take_events()
    return core


@pytest.mark.parametrize("positions", [10, 1000])
def test_cutover_routing_is_judged_when_keys_open_or_close_not_per_ticker_frame(
    positions: int,
) -> None:
    """Issue 19 F8: the old core recounted the whole book (and asked `stream_symbol` about
    every held symbol) on every ticker frame: 1,000 questions a frame at 1,000 positions."""
    calls: list[str] = []
    core = _cutover_core(positions, calls)
    calls.clear()
    for n in range(100):
        core.on_frame(PUB, _ticker("S0000USDT", snapshot=False, cs=20 + n, mark=f"{100 + n}"), T0)
    assert calls == []  # no routing question at all: a ticker opens and closes nothing
    # A key that opens asks about its own symbol only; a close likewise.
    core.on_frame(PRIVATE, _push(_row("S9998USDT", seq=2)), T0 + 1)
    assert set(calls) == {"S9998USDT"}
    calls.clear()
    core.on_frame(PRIVATE, _push(_row("S9998USDT", seq=3, size="0", side="")), T0 + 2)
    assert set(calls) == {"S9998USDT"}
    # And the routing is right: the streamed half is subscribed, the other half is not.
    assert core.subscribed_tickers() == positions // 2


def test_an_absurd_mark_is_a_bad_frame_not_an_overflow_later() -> None:
    """Found by the fuzz test: a finite but huge mark (1E999999) used to be accepted and then
    overflowed the PnL of the next position opened on that symbol, raising from `on_frame`."""
    core = _core()
    _live_private(core)
    _live_public(core)
    core.on_frame(PUB, _ticker("BTCUSDT", snapshot=True, cs=1, mark="1E999999"), T0)
    (bad,) = [e for e in core.take_events() if isinstance(e, BadFrame)]
    assert "markPrice is out of range" in bad.error
    assert core.marks.mark("BTCUSDT") is None
    core.on_frame(PRIVATE, frame("F13"), T0 + 0.1)  # opens BTCUSDT: must not raise
    opened = [e for e in core.take_events() if isinstance(e, PositionOpened)]
    assert len(opened) == 1 and opened[0].view.unrealised_pnl is not None


def test_many_missed_symbols_are_confirmed_by_one_complete_listing() -> None:
    # A mass close while the private stream is down: one call confirms all, not one each
    # (issue 19 F1; Bybit allows 50 position/list calls a second).
    core = _core()
    (bootstrap,) = core.take_rest_requests()
    symbols = [f"S{i:02d}USDT" for i in range(CONFIRM_SYMBOLS_MAX + 1)]
    rows = [position_from_ws(WsPosition(**_row(s, seq=1)), 1) for s in symbols]
    core.on_positions(bootstrap.request_id, rows, requested_at=T0, response_ts_ms=1, now=T0)
    core.take_rest_requests()
    core.on_positions(0, [], requested_at=T0 + 1, response_ts_ms=2, now=T0 + 1, reason="poll")
    assert not [e for e in core.take_events() if isinstance(e, PositionClosed)]
    (confirm,) = core.take_rest_requests()
    assert isinstance(confirm, FetchPositions)
    assert (confirm.reason, confirm.symbol) == ("confirm", None)
    core.on_positions(confirm.request_id, [], requested_at=T0 + 2, response_ts_ms=3, now=T0 + 2)
    closed = [e.key.symbol for e in core.take_events() if isinstance(e, PositionClosed)]
    assert closed == symbols
