"""`BybitHybridStream` under every simulator fault switch (issue 3's "done when").

For each fault the stream must recover by itself, lose no open or close (compared with the
simulator's own history), resume ticker marks, and let no exception escape (`handler_errors`
stays 0; `loop_errors` in conftest fails the test if the loop's exception handler is called).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest

from bybit_hybrid import BybitHybridStream
from bybit_hybrid.protocol.backoff import worst_case_connects
from bybit_hybrid.protocol.hybrid import PRIVATE, BadFrame, FetchPositions, HybridConfig, RestFailed
from bybit_hybrid.protocol.session import (
    AuthFailed,
    HeartbeatRtt,
    SessionConfig,
    SessionState,
    SocketDead,
)
from bybit_hybrid.protocol.subscriptions import SubscriptionFailed
from bybit_hybrid.sim import ConnKind, EventKind, RestErrorMode, SimServer, Target
from tests.integration import stream_harness
from tests.integration.stream_harness import (
    BACKOFF,
    PUBLIC,
    SESSION,
    Delivered,
    StreamHarness,
    sim_config,
    start_stream,
)

# Every test here runs once per WebSocket backend (picows, the default, and aiohttp).
from tests.support import UNIT_S, wait_for

D = Decimal
# Every test here runs once per WebSocket backend (picows, the default, and aiohttp).
ws_backend_name = stream_harness.ws_backend_each


S = SessionState
POSITION_LIST = "/v5/position/list"
# How long a reconnect may take once nothing blocks it: the capped backoff plus handshakes.
RECOVERY_S = BACKOFF.max_s + 1 * UNIT_S
# Outages are held open by refusing new sockets, so changes made meanwhile cannot be pushed.
OUTAGE_S = 0.5 * UNIT_S

Fault = Callable[[], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class OutageResult:
    """What a private outage produced: when the socket came back, and the two missed events."""

    reopened_at: float
    opened: Delivered
    closed: Delivered


async def trade_during_private_outage(
    h: StreamHarness, fault: Fault, *, before_reconnect: Callable[[], None] | None = None
) -> OutageResult:
    """Takes the private socket down with `fault`, opens SOLUSDT and closes BTCUSDT while it is
    down, and returns once both changes have been delivered after the reconnect."""
    sim = h.sim
    faulted_at = time.monotonic()
    sim.faults.refuse_connections(OUTAGE_S)
    await fault()
    await wait_for(
        h.entered(PRIVATE, S.DISCONNECTED, faulted_at),
        2 * UNIT_S,
        "the private socket to notice the fault",
    )
    assert h.state(PRIVATE) is not S.LIVE
    start = len(h.delivered)
    history_mark = len(sim.exchange.history)
    await sim.open_position("SOLUSDT", "Buy", D("0.5"))
    await sim.close_position("BTCUSDT")
    assert [(e.kind, e.symbol) for e in sim.exchange.history.since(history_mark)] == [
        (EventKind.ORDER, "SOLUSDT"),
        (EventKind.OPEN, "SOLUSDT"),
        (EventKind.ORDER, "BTCUSDT"),
        (EventKind.CLOSE, "BTCUSDT"),
    ]
    if before_reconnect is not None:
        before_reconnect()
    await wait_for(
        h.entered(PRIVATE, S.AUTHENTICATING, faulted_at),
        OUTAGE_S + RECOVERY_S,
        "the private socket to reopen",
    )
    reopened_at = h.transitions(PRIVATE, S.AUTHENTICATING, faulted_at)[0]
    opened = await h.wait_delivered(
        lambda d: d["symbol"] == "SOLUSDT", start, 6 * UNIT_S, "the missed SOLUSDT open"
    )
    closed = await h.wait_delivered(
        lambda d: d["symbol"] == "BTCUSDT" and d["status"] == "closed",
        start,
        6 * UNIT_S,
        "the missed BTCUSDT close",
    )
    # Nothing of it was pushed (the socket was down): both come from the REST reconcile.
    assert (opened.data["source"], opened.data["status"]) == ("rest", "open")
    assert closed.data["source"] == "rest"
    sol = sim.exchange.positions[("SOLUSDT", 0)]
    assert (opened.data["side"], opened.data["size"], opened.data["entry_price"]) == (
        "Buy",
        D("0.5"),
        sol.avg_price,
    )
    btc_open = next(
        e for e in sim.exchange.history.of_kind(EventKind.OPEN) if e.symbol == "BTCUSDT"
    )
    assert (closed.data["side"], closed.data["size"], closed.data["entry_price"]) == (
        "Buy",
        0,
        D(btc_open.details["entry_price"]),
    )
    assert [d["symbol"] for d in h.datas(start) if d["status"] == "closed"] == ["BTCUSDT"]
    return OutageResult(reopened_at, opened, closed)


async def assert_recovered(h: StreamHarness) -> None:
    """Both sockets LIVE with the right tickers, marks flowing, book equal to the exchange."""
    await h.wait_live(RECOVERY_S + 2 * UNIT_S, "the stream to recover")
    symbols = sorted(h.stream.core.book.open_symbols())
    assert h.sim_ticker_topics() == {f"tickers.{s}" for s in symbols}
    await h.prove_marks_flow(symbols)
    h.assert_in_sync()
    assert h.stream.get_stats()["handler_errors"] == 0


# --- socket drops -------------------------------------------------------------------------


@pytest.mark.parametrize("abrupt", [False, True], ids=["close", "abort"])
async def test_public_drop(h: StreamHarness, abrupt: bool) -> None:
    faulted_at = time.monotonic()
    start = len(h.delivered)
    assert await h.sim.faults.drop(Target.PUBLIC, abrupt=abrupt) == 1
    await wait_for(h.entered(PUBLIC, S.LIVE, faulted_at), RECOVERY_S, "public back")
    assert h.transitions(PRIVATE, S.DISCONNECTED, faulted_at) == []
    assert h.stream.get_stats()["reconnections"] == 1
    await assert_recovered(h)
    # A public outage changes no position: only marks were delivered meanwhile.
    assert h.non_ticker(start) == []


@pytest.mark.parametrize("abrupt", [False, True], ids=["close", "abort"])
async def test_private_drop_reconciles_missed_open_and_close(
    h: StreamHarness, abrupt: bool
) -> None:
    async def drop() -> None:
        assert await h.sim.faults.drop(Target.PRIVATE, abrupt=abrupt) == 1

    result = await trade_during_private_outage(h, drop)
    for delivered in (result.opened, result.closed):
        assert delivered.at - result.reopened_at <= 1 * UNIT_S
    assert h.transitions(PUBLIC, S.DISCONNECTED) == []
    await assert_recovered(h)
    assert h.sim_ticker_topics() == {"tickers.ETHUSDT", "tickers.SOLUSDT"}


@pytest.mark.parametrize("abrupt", [False, True], ids=["close", "abort"])
async def test_both_sockets_drop(h: StreamHarness, abrupt: bool) -> None:
    async def drop() -> None:
        assert await h.sim.faults.drop(Target.ALL, abrupt=abrupt) == 2

    result = await trade_during_private_outage(h, drop)
    for delivered in (result.opened, result.closed):
        assert delivered.at - result.reopened_at <= 1 * UNIT_S
    await assert_recovered(h)
    assert h.stream.get_stats()["reconnections"] == 2
    assert h.sim_ticker_topics() == {"tickers.ETHUSDT", "tickers.SOLUSDT"}


# --- half-dead sockets --------------------------------------------------------------------


@pytest.mark.parametrize("target", [Target.PRIVATE, Target.PUBLIC, Target.ALL])
async def test_silent_socket_is_declared_dead_by_pong_timeout(
    h: StreamHarness, target: Target
) -> None:
    names = {Target.PRIVATE: [PRIVATE], Target.PUBLIC: [PUBLIC], Target.ALL: [PRIVATE, PUBLIC]}
    silenced_at = time.monotonic()
    assert h.sim.faults.silence(target) == len(names[target])
    # The next ping gets no pong: dead within one ping interval plus the pong timeout.
    limit_s = SESSION.ping_interval_s + SESSION.pong_timeout_s + 0.5 * UNIT_S
    await wait_for(
        lambda: len(h.of_type(SocketDead, silenced_at)) == len(names[target]),
        limit_s,
        "the silent sockets to be declared dead",
    )
    dead = h.of_type(SocketDead, silenced_at)
    assert sorted(e.connection for e in dead) == sorted(names[target])
    assert all("no pong" in e.reason for e in dead)
    for name in names[target]:
        await wait_for(h.entered(name, S.LIVE, silenced_at), RECOVERY_S, f"{name} back")
    await assert_recovered(h)
    assert sorted(e.connection for e in h.of_type(SocketDead)) == sorted(names[target])


async def test_refused_connections_back_off_then_recover(h: StreamHarness) -> None:
    refuse_s = 1 * UNIT_S
    faulted_at = time.monotonic()
    h.sim.faults.refuse_connections(refuse_s)
    assert await h.sim.faults.drop(Target.ALL) == 2
    start = len(h.delivered)
    await h.sim.open_position("XRPUSDT", "Sell", D("20"))
    for name in (PRIVATE, PUBLIC):
        await wait_for(
            h.entered(name, S.LIVE, faulted_at),
            refuse_s + RECOVERY_S,
            f"{name} back after the refusals",
        )
        back_at = h.transitions(name, S.LIVE, faulted_at)[0]
        assert back_at - faulted_at >= refuse_s
        assert back_at - faulted_at <= refuse_s + RECOVERY_S
        attempts = h.transitions(name, S.CONNECTING, faulted_at)
        failed = [
            e
            for t, e in h.core_events
            if t >= faulted_at
            and getattr(e, "connection", None) == name
            and getattr(e, "new", None) is S.DISCONNECTED
            and "connect refused: http 503" in getattr(e, "reason", "")
        ]
        assert len(failed) >= 2, f"{name} retried"
        assert len(attempts) == len(failed) + 1
        assert len(attempts) <= worst_case_connects(BACKOFF, back_at - faulted_at)
    opened = await h.wait_delivered(lambda d: d["symbol"] == "XRPUSDT", start, what="XRP open")
    assert (opened.data["source"], opened.data["side"]) == ("rest", "Sell")
    await assert_recovered(h)


async def test_rejected_auth_backs_off_instead_of_looping(h: StreamHarness) -> None:
    reject_s = 1 * UNIT_S
    faulted_at = time.monotonic()
    h.sim.faults.reject_auth(seconds=reject_s)
    assert await h.sim.faults.drop(Target.PRIVATE) == 1
    start = len(h.delivered)
    await h.sim.open_position("XRPUSDT", "Sell", D("20"))
    await wait_for(
        h.entered(PRIVATE, S.LIVE, faulted_at),
        reject_s + RECOVERY_S,
        "private back after the rejections",
    )
    back_at = h.transitions(PRIVATE, S.LIVE, faulted_at)[0]
    rejected = h.of_type(AuthFailed, faulted_at)
    assert len(rejected) >= 2
    assert {(e.connection, e.ret_msg) for e in rejected} == {(PRIVATE, "Params Error")}
    attempts = h.transitions(PRIVATE, S.CONNECTING, faulted_at)
    assert len(attempts) == len(rejected) + 1
    # A tight loop would reconnect hundreds of times a second; the backoff allows a handful.
    assert len(attempts) <= worst_case_connects(BACKOFF, back_at - faulted_at)
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    assert min(gaps) >= BACKOFF.floor_s(0)
    assert max(gaps) >= BACKOFF.floor_s(2), "the delay escalates"
    # Only the accepted auth led on to subscribing; the public socket never noticed.
    rejected_at = [t for t, e in h.core_events if t >= faulted_at and isinstance(e, AuthFailed)]
    subscribing = h.transitions(PRIVATE, S.SUBSCRIBING, faulted_at)
    assert len(subscribing) == 1
    assert subscribing[0] > rejected_at[-1]
    assert h.of_type(SubscriptionFailed) == []
    assert h.transitions(PUBLIC, S.DISCONNECTED, faulted_at) == []
    opened = await h.wait_delivered(lambda d: d["symbol"] == "XRPUSDT", start, what="XRP open")
    assert opened.data["source"] == "rest"
    await assert_recovered(h)


# --- bad input on a healthy socket -----------------------------------------------------


async def test_malformed_frame_is_counted_and_the_sockets_stay_up(h: StreamHarness) -> None:
    faulted_at = time.monotonic()
    assert h.sim.faults.send_malformed(Target.ALL) == 2
    await wait_for(lambda: len(h.of_type(BadFrame, faulted_at)) == 2, 2 * UNIT_S, "bad frames")
    assert sorted(e.connection for e in h.of_type(BadFrame)) == [PRIVATE, PUBLIC]
    assert h.stream.get_stats()["bad_frames"] == 2
    # Still the same sockets: nothing closed, and the private one still delivers pushes.
    start = len(h.delivered)
    await h.sim.open_position("XRPUSDT", "Sell", D("20"))
    opened = await h.wait_delivered(lambda d: d["symbol"] == "XRPUSDT", start, what="XRP open")
    assert opened.data["source"] == "position"
    await assert_recovered(h)
    assert h.transitions(PRIVATE, S.DISCONNECTED) == []
    assert h.transitions(PUBLIC, S.DISCONNECTED) == []
    assert h.stream.get_stats()["reconnections"] == 0


async def test_unknown_topic_is_ignored(h: StreamHarness) -> None:
    ignored = h.stream.get_stats()["ignored_frames"]
    assert h.sim.faults.send_unknown_topic(Target.ALL) == 2
    await wait_for(
        lambda: h.stream.get_stats()["ignored_frames"] == ignored + 2, 2 * UNIT_S, "ignored"
    )
    assert h.stream.get_stats()["bad_frames"] == 0
    start = len(h.delivered)
    await h.sim.open_position("XRPUSDT", "Sell", D("20"))
    opened = await h.wait_delivered(lambda d: d["symbol"] == "XRPUSDT", start, what="XRP open")
    assert opened.data["source"] == "position"
    await assert_recovered(h)
    assert h.transitions(PRIVATE, S.DISCONNECTED) == []
    assert h.transitions(PUBLIC, S.DISCONNECTED) == []


# --- the server's idle cut ---------------------------------------------------------------


async def test_max_active_time_cut_recovers(sim: SimServer) -> None:
    h = await start_stream(sim, max_active_time_s=30)
    try:
        # The stream asked for max_active_time=30s in the private URL, and the server took it.
        assert [c.max_active_s for c in h.sim_conns(ConnKind.PRIVATE)] == [30.0]
        # Pings count as activity: right after one is answered the socket is not idle.
        await wait_for(
            lambda: len([e for e in h.of_type(HeartbeatRtt) if e.connection == PRIVATE]) >= 1,
            2 * SESSION.ping_interval_s,
            "a private ping answered",
        )
        assert sim.faults.cut_idle(0.5 * SESSION.ping_interval_s) == 0

        async def cut() -> None:
            assert sim.faults.cut_idle(0.0) == 1

        result = await trade_during_private_outage(h, cut)
        for delivered in (result.opened, result.closed):
            assert delivered.at - result.reopened_at <= 1 * UNIT_S
        assert [c.max_active_s for c in h.sim_conns(ConnKind.PRIVATE)] == [30.0]
        await assert_recovered(h)
    finally:
        await h.close()


@pytest.mark.parametrize(
    ("seconds", "ping_s", "message"),
    [
        (20, 10.0, "max_active_time_s must be within 30..600"),
        (601, 10.0, "max_active_time_s must be within 30..600"),
        (30, 40.0, "ping_interval_s must stay below max_active_time_s"),
    ],
)
def test_max_active_time_the_pings_cannot_beat_is_refused(
    seconds: int, ping_s: float, message: str
) -> None:
    session = SessionConfig(
        ping_interval_s=ping_s, pong_timeout_s=ping_s / 2, stale_after_s=ping_s * 1.5
    )
    with pytest.raises(ValueError, match=message):
        BybitHybridStream(
            "key",
            "secret",
            base_url="http://127.0.0.1:9",
            config=HybridConfig(session=session),
            max_active_time_s=seconds,
        )


async def test_pings_beat_the_server_idle_scan() -> None:
    """With the server cutting after 0.6 s idle, a 0.3 s ping keeps the private socket up."""
    idle_s = 0.6 * UNIT_S
    async with SimServer(sim_config(idle_scan_s=0.05 * UNIT_S, default_max_active_s=idle_s)) as sim:
        session = SessionConfig(
            ping_interval_s=idle_s / 2,
            pong_timeout_s=idle_s / 4,
            stale_after_s=idle_s,
            backoff=BACKOFF,
        )
        h = await start_stream(sim, config=HybridConfig(session=session, rest_backoff=BACKOFF))
        try:
            await wait_for(
                lambda: len([e for e in h.of_type(HeartbeatRtt) if e.connection == PRIVATE]) >= 5,
                6 * session.ping_interval_s + 1 * UNIT_S,
                "five private pings answered",
            )
            assert h.transitions(PRIVATE, S.DISCONNECTED) == []
            assert h.stream.get_stats()["reconnections"] == 0
        finally:
            await h.close()


# --- REST failures ------------------------------------------------------------------------

# Counts that outlast the REST client's own retries (1 try + 3 retries, or one clock resync
# for 10002) for both position fetches that overlap at start (bootstrap and first reconcile).
REST_FAULTS = [
    pytest.param(RestErrorMode.RATE_LIMIT, 8, id="10006"),
    pytest.param(RestErrorMode.TIMESTAMP, 4, id="10002"),
    pytest.param(RestErrorMode.SERVER_ERROR, 8, id="5xx"),
]


@pytest.mark.parametrize(("mode", "count"), REST_FAULTS)
async def test_rest_errors_on_bootstrap(sim: SimServer, mode: RestErrorMode, count: int) -> None:
    sim.faults.rest_errors(mode, count, path=POSITION_LIST)
    h = await start_stream(sim, wait=False)
    try:
        await h.stream.wait_ready(6 * UNIT_S)
        failures = h.of_type(RestFailed)
        assert failures, "the REST client's own retries were outlasted"
        assert all(isinstance(f.request, FetchPositions) for f in failures)
        assert "bootstrap" in {
            f.request.reason for f in failures if isinstance(f.request, FetchPositions)
        }
        assert h.stream.get_stats()["rest_failures"] == len(failures)
        assert sim.faults.state.rest_error_count == 0
        assert sorted(d["symbol"] for d in h.position_events()) == ["BTCUSDT", "ETHUSDT"]
        await assert_recovered(h)
    finally:
        await h.close()


@pytest.mark.parametrize(("mode", "count"), REST_FAULTS)
async def test_rest_errors_on_reconcile(h: StreamHarness, mode: RestErrorMode, count: int) -> None:
    failed_at = time.monotonic()

    async def drop() -> None:
        assert await h.sim.faults.drop(Target.PRIVATE) == 1

    # Half the count: only the reconcile fetches position/list now.
    result = await trade_during_private_outage(
        h, drop, before_reconnect=lambda: h.sim.faults.rest_errors(mode, count // 2, POSITION_LIST)
    )
    failures = h.of_type(RestFailed, failed_at)
    assert [(type(f.request), getattr(f.request, "reason", None)) for f in failures] == [
        (FetchPositions, "reconnect")
    ]
    assert h.sim.faults.state.rest_error_count == 0
    # Delivered once the retry went through, not before.
    assert result.opened.at > max(t for t, e in h.core_events if isinstance(e, RestFailed))
    await assert_recovered(h)


async def test_private_outage_flip_and_resize_are_reconciled(h: StreamHarness) -> None:
    sim = h.sim
    faulted_at = time.monotonic()
    sim.faults.refuse_connections(OUTAGE_S)
    assert await sim.faults.drop(Target.PRIVATE) == 1
    await wait_for(h.entered(PRIVATE, S.DISCONNECTED, faulted_at), 2 * UNIT_S, "down")
    start = len(h.delivered)
    await sim.open_position("ETHUSDT", "Buy", D("0.05"))  # Sell 0.02 -> Buy 0.03
    await sim.change_position("BTCUSDT", size=D("0.003"))
    await wait_for(
        lambda: len(h.position_events(start)) >= 3,
        OUTAGE_S + RECOVERY_S,
        "the reconciled changes",
    )
    changes = [
        (d["symbol"], d["status"], d["side"], d["size"], d["source"])
        for d in h.position_events(start)
    ]
    assert sorted(changes) == [
        ("BTCUSDT", "open", "Buy", D("0.003"), "rest"),
        ("ETHUSDT", "closed", "Sell", 0, "rest"),
        ("ETHUSDT", "open", "Buy", D("0.03"), "rest"),
    ]
    eth = [c for c in changes if c[0] == "ETHUSDT"]
    assert [c[1] for c in eth] == ["closed", "open"]
    await assert_recovered(h)


async def test_stop_during_an_outage_leaves_nothing_behind(h: StreamHarness) -> None:
    faulted_at = time.monotonic()
    h.sim.faults.refuse_connections(10 * UNIT_S)
    assert await h.sim.faults.drop(Target.ALL) == 2
    for name in (PRIVATE, PUBLIC):
        await wait_for(
            h.entered(name, S.CONNECTING, faulted_at, times=2),
            2 * UNIT_S,
            f"{name} retrying",
        )
    # `close()` stops the stream mid-backoff and checks tasks and sockets.
    await h.close()
    assert h.stream.get_stats()["running"] is False
