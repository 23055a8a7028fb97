"""The simulator's trading-fault switches, observed on the wire: failures per retCode with Bybit's
texts and headers, lost replies, delayed replies, partial fills and hand-set stops in flight."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import aiohttp
import pytest

from bybit_hybrid.service.commands import sim as sim_command
from bybit_hybrid.service.errors import UsageError
from bybit_hybrid.sim import EventKind, SimConfig, SimServer
from tests.integration.sim_support import (
    control,
    private_ws,
    recv_until,
    signed_headers,
    signed_post,
)
from tests.support import UNIT_S, wait_for

STOP = "/v5/position/trading-stop"
ORDER = "/v5/order/create"
BTC = "BTCUSDT"


@pytest.fixture
async def sim() -> AsyncIterator[SimServer]:
    async with SimServer(SimConfig(symbols=4, positions=0, rate_hz=20, seed=5)) as server:
        server.pause_ticks()
        await server.open_position(BTC, "Buy", Decimal("0.010"))
        yield server


def _stop_body(sim: SimServer, below_mark_ticks: int, symbol: str = BTC) -> str:
    mark = sim.exchange.prices.mark(symbol)
    tick = sim.exchange.instruments[symbol].tick_size
    stop = mark - below_mark_ticks * tick
    return json.dumps(
        {
            "category": "linear",
            "symbol": symbol,
            "tpslMode": "Full",
            "positionIdx": 0,
            "stopLoss": str(stop),
            "slTriggerBy": "MarkPrice",
        }
    )


def _close_body(qty: str) -> str:
    return json.dumps(
        {
            "category": "linear",
            "symbol": BTC,
            "side": "Sell",
            "orderType": "Market",
            "qty": qty,
            "positionIdx": 0,
            "reduceOnly": True,
        }
    )


def _held_stop(sim: SimServer) -> Decimal:
    return sim.exchange.positions[(BTC, 0)].stop_loss


def _trading(sim: SimServer) -> Any:
    return sim.faults.to_json()["trading"]


async def test_counted_rate_limit_answers_10006_with_bybits_headers(
    sim: SimServer, session: aiohttp.ClientSession
) -> None:
    await control(
        session, sim, "/sim/fault/trading", {"path": "trading-stop", "mode": "10006", "count": 2}
    )
    for _ in range(2):
        before_ms = time.time_ns() // 1_000_000
        resp, body = await signed_post(session, sim, STOP, _stop_body(sim, 50))
        assert (body["retCode"], body["retMsg"]) == (10006, "Too many visits!")
        assert resp.headers["X-Bapi-Limit"] == "10"
        assert resp.headers["X-Bapi-Limit-Status"] == "0"
        assert int(resp.headers["X-Bapi-Limit-Reset-Timestamp"]) >= before_ms + 1000
        assert _held_stop(sim) == 0, "a rate-limited request changes nothing"
    _, body = await signed_post(session, sim, STOP, _stop_body(sim, 50))
    assert body["retCode"] == 0
    assert _held_stop(sim) > 0
    events = sim.exchange.history.of_kind(EventKind.TRADING_STOP)
    assert [e.details["ret_code"] for e in events] == [10006, 10006, 0]
    assert _trading(sim)["injected"] == {"trading-stop:10006": 2}


async def test_failure_window_fails_every_call_until_it_ends(
    sim: SimServer, session: aiohttp.ClientSession
) -> None:
    sim.faults.trading_failure("trading-stop", "10001_zero", seconds=0.4 * UNIT_S)
    codes: list[tuple[int, str]] = []
    deadline = time.monotonic() + 5 * UNIT_S
    while time.monotonic() < deadline:
        _, body = await signed_post(session, sim, STOP, _stop_body(sim, 50 + len(codes)))
        codes.append((body["retCode"], body["retMsg"]))
        if body["retCode"] == 0:
            break
        await asyncio.sleep(0.05 * UNIT_S)
    assert len(codes) >= 2 and codes[-1][0] == 0
    assert set(codes[:-1]) == {(10001, "can not set tp/sl/ts for zero position")}


async def test_wrong_side_and_timestamp_texts_are_bybits(
    sim: SimServer, session: aiohttp.ClientSession
) -> None:
    sim.faults.trading_failure("trading-stop", "10001_side", count=1)
    sim.faults.trading_failure("trading-stop", "10002", count=1)
    _, body = await signed_post(session, sim, STOP, _stop_body(sim, 50))
    assert body["retCode"] == 10002  # the newest rule answers first
    assert body["retMsg"].startswith("invalid request, please check your server timestamp")
    assert "recv_window[5000]" in body["retMsg"]
    _, body = await signed_post(session, sim, STOP, _stop_body(sim, 50))
    assert body["retCode"] == 10001
    mark = sim.exchange.prices.mark(BTC)
    assert body["retMsg"].startswith("StopLoss:")
    assert "set for Buy position should lower than base_price:" in body["retMsg"]
    assert body["retMsg"].endswith(f"{int(mark * 100_000_000)}??MarkPrice")
    assert _held_stop(sim) == 0


async def _never_answered(session: aiohttp.ClientSession, sim: SimServer, body: str) -> None:
    """POSTs a signed trading-stop `body` that gets no answer within 0.3 units."""
    headers = {**signed_headers(sim, body), "Content-Type": "application/json"}
    with pytest.raises(asyncio.TimeoutError):
        async with session.post(
            f"{sim.base_url}{STOP}",
            data=body.encode(),
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=0.3 * UNIT_S),
        ):
            pass


async def test_timeout_never_answers_and_applies_nothing(
    sim: SimServer, session: aiohttp.ClientSession
) -> None:
    sim.faults.trading_failure("trading-stop", "timeout", count=1)
    body = _stop_body(sim, 50)
    await _never_answered(session, sim, body)
    assert _held_stop(sim) == 0
    (event,) = sim.exchange.history.of_kind(EventKind.TRADING_STOP)
    assert event.details["ret_code"] is None and event.details["injected"] == "timeout"


async def test_lost_reply_applies_the_request_but_never_answers(
    sim: SimServer, session: aiohttp.ClientSession
) -> None:
    sim.faults.trading_failure("trading-stop", "lost_reply", count=1)
    body = _stop_body(sim, 50)
    await _never_answered(session, sim, body)
    assert _held_stop(sim) == Decimal(json.loads(body)["stopLoss"])


async def test_delayed_reply_arrives_after_the_position_push(
    sim: SimServer, session: aiohttp.ClientSession
) -> None:
    ws = await private_ws(session, sim, ["position"])
    await control(
        session, sim, "/sim/fault/reply_delay", {"path": "trading-stop", "ms": 300, "count": 1}
    )
    request = asyncio.create_task(signed_post(session, sim, STOP, _stop_body(sim, 50)))
    push = await recv_until(ws, lambda f: f.get("topic") == "position")
    assert Decimal(push["data"][0]["stopLoss"]) > 0
    assert not request.done(), "the reply must still be in flight when the push arrives"
    _, body = await request
    assert body["retCode"] == 0
    await ws.close()


async def test_hand_set_stop_lands_while_our_reply_is_in_flight(
    sim: SimServer, session: aiohttp.ClientSession
) -> None:
    ws = await private_ws(session, sim, ["position"])
    sim.faults.hand_stop(5, count=1)  # another client: 5 ticks tighter
    sim.faults.reply_delay("trading-stop", 200, count=1)
    body = _stop_body(sim, 50)
    ours = Decimal(json.loads(body)["stopLoss"])
    tick = sim.exchange.instruments[BTC].tick_size
    request = asyncio.create_task(signed_post(session, sim, STOP, body))
    first = await recv_until(ws, lambda f: f.get("topic") == "position")
    second = await recv_until(ws, lambda f: f.get("topic") == "position")
    assert Decimal(first["data"][0]["stopLoss"]) == ours
    assert Decimal(second["data"][0]["stopLoss"]) == ours + 5 * tick
    assert not request.done()
    _, reply = await request
    assert reply["retCode"] == 0, "our reply still says OK: the hand-set stop came after it"
    assert _held_stop(sim) == ours + 5 * tick
    changes = sim.exchange.history.of_kind(EventKind.CHANGE)
    assert [e.reason.value if e.reason else None for e in changes[-2:]] == [None, "control"]
    # A looser hand stop moves away from the mark; a tighter one never crosses it.
    sim.faults.hand_stop(-3, count=1)
    _, reply = await signed_post(session, sim, STOP, _stop_body(sim, 40))
    assert _held_stop(sim) == sim.exchange.prices.mark(BTC) - 43 * tick
    sim.faults.hand_stop(1000, count=1)
    _, reply = await signed_post(session, sim, STOP, _stop_body(sim, 30))
    assert _held_stop(sim) == sim.exchange.prices.mark(BTC) - tick
    await ws.close()


async def test_partial_fill_leaves_a_remainder_and_reports_it(
    sim: SimServer, session: aiohttp.ClientSession
) -> None:
    ws = await private_ws(session, sim, ["order", "position"])
    await control(session, sim, "/sim/fault/partial_fill", {"fraction": "0.4", "count": 1})
    _, body = await signed_post(session, sim, ORDER, _close_body("0.010"))
    assert body["retCode"] == 0
    order = await recv_until(ws, lambda f: f.get("topic") == "order")
    row = order["data"][0]
    assert row["orderStatus"] == "Cancelled" and row["leavesQty"] == "0"
    assert (Decimal(row["qty"]), Decimal(row["cumExecQty"])) == (Decimal("0.01"), Decimal("0.004"))
    position = await recv_until(ws, lambda f: f.get("topic") == "position")
    assert Decimal(position["data"][0]["size"]) == Decimal("0.006")
    assert sim.exchange.positions[(BTC, 0)].size == Decimal("0.006")
    # The next close fills whole.
    _, body = await signed_post(session, sim, ORDER, _close_body("0.006"))
    assert body["retCode"] == 0 and not sim.exchange.positions[(BTC, 0)].is_open
    await ws.close()


async def test_order_create_failures_per_retcode(
    sim: SimServer, session: aiohttp.ClientSession
) -> None:
    sim.faults.trading_failure("order", "110017", count=1)
    sim.faults.trading_failure("order", "10016", count=1)
    _, body = await signed_post(session, sim, ORDER, _close_body("0.010"))
    assert (body["retCode"], body["retMsg"]) == (10016, "Internal System Error.")
    _, body = await signed_post(session, sim, ORDER, _close_body("0.010"))
    assert (body["retCode"], body["retMsg"]) == (
        110017,
        "current position is zero, cannot fix reduce-only order qty",
    )
    assert sim.exchange.positions[(BTC, 0)].is_open, "failed orders fill nothing"
    sim.faults.trading_failure("order", "timeout", count=1, symbol=BTC)
    headers = {**signed_headers(sim, _close_body("0.010")), "Content-Type": "application/json"}
    with pytest.raises(asyncio.TimeoutError):
        async with session.post(
            f"{sim.base_url}{ORDER}",
            data=_close_body("0.010").encode(),
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=0.3 * UNIT_S),
        ):
            pass
    assert sim.exchange.positions[(BTC, 0)].is_open
    _, body = await signed_post(session, sim, ORDER, _close_body("0.010"))
    assert body["retCode"] == 0 and not sim.exchange.positions[(BTC, 0)].is_open
    injected = _trading(sim)["injected"]
    assert injected == {"order:110017": 1, "order:10016": 1, "order:timeout": 1}


async def test_bad_switches_are_refused_with_the_offending_piece(
    sim: SimServer, session: aiohttp.ClientSession
) -> None:
    cases = [
        ({"path": "withdraw", "mode": "10006", "count": 1}, "withdraw"),
        ({"path": "order", "mode": "10001_zero", "count": 1}, "10001_zero"),
        ({"path": "order", "mode": "10006"}, "count"),
        ({"path": "order", "mode": "nope", "count": 1}, "nope"),
    ]
    for body, piece in cases:
        async with session.post(f"{sim.base_url}/sim/fault/trading", json=body) as resp:
            reply = await resp.json()
        assert resp.status == 400 and piece in reply["error"], reply
    async with session.post(
        f"{sim.base_url}/sim/fault/partial_fill", json={"fraction": "1.5", "count": 1}
    ) as resp:
        assert resp.status == 400 and "fraction" in (await resp.json())["error"]
    sim.faults.trading_failure("trading-stop", "10006", seconds=10)
    assert _trading(sim)["failures"][0]["mode"] == "10006"
    await control(session, sim, "/sim/fault/clear", {})
    await wait_for(lambda: not _trading(sim)["failures"], UNIT_S, "cleared")


def _sim_args(*flags: str) -> Any:
    parser = argparse.ArgumentParser()
    sim_command.add_arguments(parser)
    return sim_command.build_config(parser.parse_args(list(flags)))


async def test_the_cli_arms_trading_faults_at_start(session: aiohttp.ClientSession) -> None:
    config = _sim_args(
        "--symbols",
        "4",
        "--trading-fault",
        "trading-stop:10006,count=1,reset_ms=500",
        "--trading-fault",
        "partial-fill:0.5,seconds=30",
    )
    async with SimServer(config) as server:
        server.pause_ticks()
        await server.open_position(BTC, "Buy", Decimal("0.010"))
        resp, body = await signed_post(session, server, STOP, _stop_body(server, 50))
        assert body["retCode"] == 10006
        reset = int(resp.headers["X-Bapi-Limit-Reset-Timestamp"])
        assert reset >= body["time"] + 500
        _, body = await signed_post(session, server, ORDER, _close_body("0.010"))
        assert body["retCode"] == 0
        assert server.exchange.positions[(BTC, 0)].size == Decimal("0.005")


@pytest.mark.parametrize(
    ("spec", "piece"),
    [
        ("trading-stop:10006", "count=N or seconds=S"),
        ("trading-stop:nope,count=1", "nope"),
        ("withdraw:10006,count=1", "withdraw"),
        ("trading-stop:10006,count=1,when=later", "when=later"),
        ("order:10001_side,count=1", "10001_side"),
    ],
)
def test_bad_cli_trading_faults_name_the_offending_piece(spec: str, piece: str) -> None:
    with pytest.raises(UsageError, match="--trading-fault") as info:
        _sim_args("--trading-fault", spec)
    assert piece in str(info.value)
