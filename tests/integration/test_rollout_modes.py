"""Rollout modes against the simulator: rest, parallel, cutover, and hybrid fallback and return."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from bybit_hybrid.protocol.alerts import AlertCleared, AlertRaised, Severity
from bybit_hybrid.protocol.compare import Divergence
from bybit_hybrid.protocol.failover import ACCOUNT, FailoverSwitched, FeedMode
from bybit_hybrid.protocol.hybrid import RestFailed
from bybit_hybrid.rollout.poller import AdaptiveBybitStream
from bybit_hybrid.service.settings import AppSettings
from bybit_hybrid.service.streams import make_position_stream
from bybit_hybrid.sim import SimServer
from tests.integration.rollout_harness import (
    ALERTS,
    POLL,
    RECONNECT_S,
    RETURN_S,
    ROLLOUT,
    start_rest,
    start_rollout,
    tick_multiple,
)
from tests.integration.stream_harness import sim_config
from tests.support import UNIT_S, wait_for

BTC, ETH, SOL = "BTCUSDT", "ETHUSDT", "SOLUSDT"
# Two polls, plus a little for the request itself and the scheduler of a busy 2-core box.
TWO_POLLS_S = 2 * POLL.fast_s + 0.2 * UNIT_S


@pytest.fixture
async def sim() -> AsyncIterator[SimServer]:
    async with SimServer(sim_config()) as server:
        yield server


# --- rest ----------------------------------------------------------------------------------


async def test_rest_mode_tracks_opens_changes_and_closes_within_two_polls(sim: SimServer) -> None:
    h = await start_rest(sim)
    try:
        assert {d.data["symbol"] for d in h.delivered} == {BTC, ETH}
        t0 = time.monotonic()
        await sim.open_position(SOL, "Buy", Decimal("1"))
        opened = await h.wait_delivered(
            lambda d: d["symbol"] == SOL, t0, 3 * UNIT_S, "SOL open from REST"
        )
        assert opened.at - t0 <= TWO_POLLS_S
        assert opened.data["status"] == "open" and opened.data["size"] == Decimal("1")

        t1 = time.monotonic()
        await sim.change_position(SOL, size=Decimal("3"))
        changed = await h.wait_delivered(
            lambda d: d["symbol"] == SOL and d["size"] == Decimal("3"), t1, 3 * UNIT_S, "change"
        )
        assert changed.at - t1 <= TWO_POLLS_S

        t2 = time.monotonic()
        await sim.close_position(SOL)
        closed = await h.wait_delivered(
            lambda d: d["symbol"] == SOL and d["status"] == "closed", t2, 3 * UNIT_S, "close"
        )
        assert closed.at - t2 <= TWO_POLLS_S
        assert closed.data["size"] == 0 and closed.data["side"] == "Buy"

        assert {d.data["source"] for d in h.delivered} == {"rest"}
        # Only real changes: no two consecutive deliveries of a key are the same.
        last: dict[tuple[str, int], dict[str, object]] = {}
        for d in h.delivered:
            assert last.get(d.key) != d.data, d.data
            last[d.key] = d.data
        stats = h.stream.get_stats()
        assert stats["mode"] == "rest" and stats["polls"] >= 3
        assert stats["active_positions"] == 2 and stats["connected_private"] is False
        status = h.stream.get_status()
        assert status["mode"] == "rest" and status["poller"]["interval_s"] == POLL.fast_s
    finally:
        await h.close()


async def test_rest_mode_backs_off_on_10006_until_the_reset_header(sim: SimServer) -> None:
    h = await start_rest(sim)
    try:
        stream = h.stream
        assert isinstance(stream, AdaptiveBybitStream)
        failed_at: list[float] = []
        stream.add_listener(
            lambda e: failed_at.append(stream.now()) if isinstance(e, RestFailed) else None
        )
        # The client itself retries three times after the reset header; the fourth 10006 is
        # the poller's: nothing more may be sent before Bybit's window resets (~1 s later).
        sim.faults.rest_errors("10006", count=4, path="/v5/position/list")
        await wait_for(lambda: bool(failed_at), 8 * UNIT_S, "the poll to give up on 10006")
        polls = stream.get_stats()["polls"]
        await wait_for(lambda: stream.get_stats()["polls"] > polls, 3 * UNIT_S, "polling again")
        assert stream.get_stats()["rate_limited"] == 1
        last_poll_at = stream.poller.last_poll_at
        assert last_poll_at is not None and last_poll_at - failed_at[0] >= 0.9
        assert "10006" in (h.of_type(RestFailed)[0].error)
    finally:
        await h.close()


async def test_rest_mode_is_built_from_settings(sim: SimServer) -> None:
    settings = AppSettings(mode="rest", rest_poll_fast_s=0.3, rest_poll_slow_s=0.6)
    stream = make_position_stream(
        settings, sim.api_key, sim.api_secret, None, {"base_url": sim.base_url}
    )
    assert isinstance(stream, AdaptiveBybitStream)
    await stream.start()
    try:
        await stream.wait_ready(3 * UNIT_S)
        assert stream.get_stats()["active_positions"] == 2
    finally:
        await stream.stop()


# --- parallel ------------------------------------------------------------------------------


async def test_parallel_healthy_run_reports_no_critical_divergence(sim: SimServer) -> None:
    h = await start_rollout(sim, "parallel")
    try:
        stream = h.rollout
        t0 = time.monotonic()
        await sim.open_position(SOL, "Sell", Decimal("2"))
        await wait_for(h.seen(SOL, "rest", t0), 3 * UNIT_S, "SOL open driven by REST")

        def compared_enough() -> bool:
            summary = stream.comparison_summary() or {}
            first = summary.get("first_seen", {})
            assert isinstance(first, dict)
            changes = sum(v["changes"] for v in first.values())
            return summary.get("mark_comparisons", 0) >= 20 and changes >= 3  # type: ignore[operator]

        await wait_for(compared_enough, 5 * UNIT_S, "marks compared and SOL's open matched")
        summary = stream.comparison_summary()
        assert summary is not None
        assert summary["mark_criticals"] == 0 and summary["position_mismatches"] == 0
        assert summary["one_sided"] == {"rest": 0, "hybrid": 0}
        assert not h.of_type(Divergence)
        # The hybrid stream saw SOL's open first: pushes beat polls.
        first = summary["first_seen"]
        assert isinstance(first, dict) and first["hybrid"]["changes"] >= 1
        # Consumers only ever see the REST stream's events.
        assert {d.data["source"] for d in h.delivered} == {"rest"}
        status = stream.get_status()
        assert status["mode"] == "parallel" and status["driver"] == "rest"
        assert status["hybrid"]["sockets"]["private"]["state"] == "live"
        assert stream.get_stats()["divergences_critical"] == 0
    finally:
        await h.close()


async def test_parallel_reports_a_stale_public_mark(sim: SimServer) -> None:
    h = await start_rollout(sim, "parallel")
    try:
        stream = h.rollout
        sim.pause_ticks(BTC)
        sim.faults.stale_mark(BTC)
        # The public socket keeps serving the frozen mark; REST shows the real one, 2 % up.
        await sim.set_mark(BTC, tick_multiple(sim, BTC, h.mark_of(BTC) * Decimal("1.02")))

        def critical_on_btc() -> bool:
            return any(
                d.subject == BTC and d.kind == "mark" and d.severity is Severity.CRITICAL
                for d in h.of_type(Divergence)
            )

        await wait_for(critical_on_btc, 3 * UNIT_S, "a critical mark divergence on BTC")
        summary = stream.comparison_summary()
        assert summary is not None and summary["mark_criticals"] >= 1  # type: ignore[operator]
        worst = summary["worst_by_symbol"]
        assert isinstance(worst, dict) and Decimal(worst[BTC]) > Decimal("1.9")
        assert Decimal(worst[ETH]) < Decimal("0.1")
    finally:
        sim.faults.clear()
        sim.resume_ticks(BTC)
        await h.close()


# --- hybrid: fallback and return -----------------------------------------------------------


async def test_hybrid_keeps_events_flowing_from_rest_while_sockets_are_refused(
    sim: SimServer,
) -> None:
    h = await start_rollout(sim, "hybrid")
    try:
        for symbol in (BTC, ETH):
            sim.set_trend(symbol, 1)  # a moving mark, so every poll has something to report
        await wait_for(h.seen(BTC, "ticker", 0.0), 2 * UNIT_S, "ticker events before the fault")
        # Past the socket-down warning (production 30 s), so the alert comes and goes too.
        outage_s = ALERTS.socket_down_warning_s + 0.5 * UNIT_S
        t0 = time.monotonic()
        sim.faults.refuse_connections(outage_s)
        await sim.faults.drop(abrupt=True)

        await wait_for(h.switched(ACCOUNT, FeedMode.POLLING, t0), 2 * UNIT_S, "account to REST")
        for symbol in (BTC, ETH):
            await wait_for(h.seen(symbol, "rest", t0, times=3), 2 * UNIT_S, f"{symbol} from REST")
        # A position opened during the outage reaches consumers from REST.
        await sim.open_position(SOL, "Buy", Decimal("1"))
        opened = await h.wait_delivered(
            lambda d: d["symbol"] == SOL, t0, 2 * UNIT_S, "SOL open during the outage"
        )
        assert opened.data["source"] == "rest"
        status = h.rollout.get_status()
        assert status["failover"]["account"]["mode"] == "polling"
        assert "private stream down" in status["failover"]["account"]["reason"]
        assert h.rollout.get_stats()["account_mode"] == "polling"

        # The refusal ends: tickers resume by themselves, and the streams take over again.
        t1 = t0 + outage_s
        await wait_for(h.seen(BTC, "ticker", t1), RECONNECT_S, "BTC tickers again")
        await wait_for(h.switched(ACCOUNT, FeedMode.STREAMING, t1), RETURN_S, "account back")
        for symbol in (BTC, ETH):
            await wait_for(
                lambda s=symbol: (
                    h.rollout.failover is not None  # type: ignore[misc]
                    and not h.rollout.failover.polls_marks(s)
                ),
                RETURN_S,
                f"{symbol} back to streaming",
            )
        # Every switch was announced with its reason; socket-down alerts came and went.
        assert all(s.reason for s in h.of_type(FailoverSwitched))
        raised = {a.name for a in h.of_type(AlertRaised, t0)}
        assert "socket_down.private" in raised
        await wait_for(
            lambda: "socket_down.private" in {a.name for a in h.of_type(AlertCleared, t0)},
            3 * UNIT_S,
            "socket_down.private cleared after its hold",
        )
        # One outage, one cause: never "no ticker subscribed" on top of the socket being down.
        assert "zero_subscriptions" not in raised
    finally:
        await h.close()


async def test_a_muted_symbol_falls_back_alone_and_recovers(sim: SimServer) -> None:
    h = await start_rollout(sim, "hybrid")
    try:
        for symbol in (BTC, ETH):
            sim.set_trend(symbol, 1)
        await wait_for(h.seen(BTC, "ticker", 0.0), 2 * UNIT_S, "BTC tickers")
        t0 = time.monotonic()
        sim.faults.mute(BTC)
        await wait_for(h.switched(BTC, FeedMode.POLLING, t0), 2 * UNIT_S, "BTC to REST")
        assert "mark" in h.switches(BTC, FeedMode.POLLING, t0)[0].reason
        await wait_for(h.seen(BTC, "rest", t0, times=3), 2 * UNIT_S, "BTC marks from REST")
        t_rest = time.monotonic()
        await wait_for(h.seen(ETH, "ticker", t_rest, times=3), 2 * UNIT_S, "ETH ticks meanwhile")
        failover = h.rollout.failover
        assert failover is not None
        assert failover.polling_symbols() == {BTC}
        assert failover.account_mode is FeedMode.STREAMING
        assert not h.switches(ETH, FeedMode.POLLING) and not h.switches(ACCOUNT, FeedMode.POLLING)
        await wait_for(
            lambda: any(
                a.name == "mark_stale" and BTC in a.message for a in h.of_type(AlertRaised, t0)
            ),
            3 * UNIT_S,
            "one mark_stale alert naming BTC",
        )

        t1 = time.monotonic()
        sim.faults.mute(BTC, on=False)
        await wait_for(h.seen(BTC, "ticker", t1), 2 * UNIT_S, "BTC tickers again")
        await wait_for(h.switched(BTC, FeedMode.STREAMING, t1), RETURN_S, "BTC back")
        assert failover.polling_symbols() == set()
        await wait_for(
            lambda: "mark_stale" in {a.name for a in h.of_type(AlertCleared, t1)},
            3 * UNIT_S,
            "mark_stale cleared after its hold",
        )
    finally:
        await h.close()


# --- cutover -------------------------------------------------------------------------------


async def test_cutover_streams_its_share_and_polls_the_rest(sim: SimServer) -> None:
    # sha256 buckets: ETHUSDT 1342 (streamed at 50 %), BTCUSDT 9065 and SOLUSDT 8589 (REST).
    rollout = dataclasses.replace(ROLLOUT, cutover_pct=50.0)
    h = await start_rollout(sim, "cutover", rollout=rollout)
    try:
        stream = h.rollout
        for symbol in (BTC, ETH):
            sim.set_trend(symbol, 1)
        await wait_for(h.seen(ETH, "ticker", 0.0, times=3), 2 * UNIT_S, "ETH on the streams")
        await wait_for(h.seen(BTC, "rest", 0.0, times=3), 2 * UNIT_S, "BTC marks from REST")
        assert "ticker" not in h.sources(BTC) and "position" not in h.sources(BTC)
        assert stream.hybrid.core.subscribed_tickers() == 1
        t0 = time.monotonic()
        await sim.open_position(SOL, "Buy", Decimal("1"))
        opened = await h.wait_delivered(lambda d: d["symbol"] == SOL, t0, 3 * UNIT_S, "SOL")
        assert opened.data["source"] == "rest"
        cutover = stream.get_status()["cutover"]
        assert cutover == {
            "pct": 50.0,
            "streamed_symbols": [ETH],
            "rest_symbols": [BTC, SOL],
        }
        assert stream.hybrid.core.stats.unstreamed_rows >= 1  # SOL's push was left to REST
    finally:
        await h.close()


@pytest.mark.parametrize("mode", ["canary", "hybrid", "cutover", "parallel"])
async def test_every_mode_is_built_from_settings_and_shows_its_mode(
    sim: SimServer, mode: str
) -> None:
    settings = AppSettings(mode=mode, rest_poll_fast_s=0.3, rest_poll_slow_s=0.6)  # type: ignore[arg-type]
    stream = make_position_stream(
        settings, sim.api_key, sim.api_secret, None, {"base_url": sim.base_url}
    )
    await stream.start()
    try:
        await stream.wait_ready(3 * UNIT_S)
        assert stream.get_status()["mode"] == mode
        assert stream.get_stats()["mode"] == mode
        assert stream.get_stats()["active_positions"] == 2
    finally:
        await stream.stop()
