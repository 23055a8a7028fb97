"""The official pybit client against the simulator, as it would run against Bybit."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from pybit import unified_trading
from pybit.exceptions import InvalidRequestError

from bybit_hybrid.sim import SimConfig
from tests.integration.sim_support import ThreadedSim, threaded_sim
from tests.support import UNIT_S, wait_for_sync


@pytest.fixture
def sim() -> Iterator[ThreadedSim]:
    with threaded_sim(SimConfig(symbols=8, positions=4, rate_hz=20, seed=11)) as running:
        yield running


@pytest.fixture
def pointed_at_sim(sim: ThreadedSim, monkeypatch: pytest.MonkeyPatch) -> ThreadedSim:
    """pybit formats its URLs from module constants; point them at the sim."""
    ws_base = sim.server.base_url.replace("http://", "ws://")
    monkeypatch.setattr(unified_trading, "PUBLIC_WSS", ws_base + "/v5/public/{CHANNEL_TYPE}")
    monkeypatch.setattr(unified_trading, "PRIVATE_WSS", ws_base + "/v5/private")
    return sim


class Inbox:
    """Thread-safe message collector for pybit callbacks."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.messages: list[dict[str, Any]] = []

    def __call__(self, message: dict[str, Any]) -> None:
        with self._lock:
            self.messages.append(message)

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.messages)


class WaitingDict(dict[str, Any]):
    """A dict whose reads of a missing key wait (bounded) for another thread to write it.

    pybit sends a subscribe frame and only then records `subscriptions[req_id]` and the
    topic's callback. Against Bybit the network round trip always covers that gap; on
    loopback under load, pybit's socket thread can read the reply (or the ticker snapshot)
    first, raise KeyError and close the socket for good. Waiting here closes the gap the way
    the round trip does, without changing what pybit sends or how it handles frames.
    """

    def __init__(self, wait_s: float) -> None:
        super().__init__()
        self._wait_s = wait_s
        self._written = threading.Condition()

    def __setitem__(self, key: str, value: Any) -> None:
        with self._written:
            super().__setitem__(key, value)
            self._written.notify_all()

    def __getitem__(self, key: str) -> Any:
        with self._written:
            self._written.wait_for(lambda: dict.__contains__(self, key), self._wait_s)
        return super().__getitem__(key)


def _without_record_race(ws: Any) -> Any:
    """Installs WaitingDicts before the first subscribe (see WaitingDict)."""
    ws.subscriptions = WaitingDict(wait_s=2 * UNIT_S)
    ws.callback_directory = WaitingDict(wait_s=2 * UNIT_S)
    return ws


def _http(sim: ThreadedSim) -> Any:
    session = unified_trading.HTTP(api_key=sim.server.api_key, api_secret=sim.server.api_secret)
    session.endpoint = sim.server.base_url
    return session


def test_public_ticker_stream(pointed_at_sim: ThreadedSim) -> None:
    inbox = Inbox()
    ws = _without_record_race(
        unified_trading.WebSocket(
            channel_type="linear", testnet=False, ping_interval=1, ping_timeout=0.5
        )
    )
    try:
        ws.ticker_stream(symbol="BTCUSDT", callback=inbox)
        wait_for_sync(lambda: len(inbox.snapshot()) >= 5, what="ticker messages via pybit")
        frames = inbox.snapshot()
        # pybit merges deltas into its cache and hands out the merged ticker.
        assert all(f["topic"] == "tickers.BTCUSDT" for f in frames)
        assert all("markPrice" in f["data"] and "lastPrice" in f["data"] for f in frames)
        wait_for_sync(
            lambda: any(c.pings_received >= 2 for c in list(pointed_at_sim.server.connections)),
            what="pybit JSON pings",
        )
        assert ws.is_connected()
    finally:
        ws.exit()


def test_private_position_stream(pointed_at_sim: ThreadedSim) -> None:
    sim = pointed_at_sim
    inbox = Inbox()
    ws = _without_record_race(
        unified_trading.WebSocket(
            channel_type="private",
            testnet=False,
            api_key=sim.server.api_key,
            api_secret=sim.server.api_secret,
            ping_interval=1,
            ping_timeout=0.5,
        )
    )
    try:
        ws.position_stream(callback=inbox)
        wait_for_sync(lambda: ws.auth, what="pybit auth acknowledged")
        wait_for_sync(
            lambda: any("position" in c.topics for c in list(sim.server.connections)),
            what="position subscription on the sim",
        )
        sim.call(sim.server.open_position("ETHPERP", "Buy", Decimal("0.05")))
        wait_for_sync(lambda: bool(inbox.snapshot()), what="a position push via pybit")
        row = inbox.snapshot()[0]["data"][0]
        assert (row["symbol"], row["side"], row["size"]) == ("ETHPERP", "Buy", "0.05")
        # pybit sends a JSON ping after each protocol pong, so both kinds of ping work.
        wait_for_sync(
            lambda: all(c.pings_received >= 2 for c in list(sim.server.connections)),
            what="pybit JSON pings",
        )
    finally:
        ws.exit()


def test_http_positions_with_cursor_pagination(pointed_at_sim: ThreadedSim) -> None:
    session = _http(pointed_at_sim)
    symbols: list[str] = []
    cursor = ""
    for _ in range(10):
        params: dict[str, Any] = {"category": "linear", "settleCoin": "USDT", "limit": 1}
        if cursor:
            params["cursor"] = cursor
        reply = session.get_positions(**params)
        symbols += [row["symbol"] for row in reply["result"]["list"]]
        cursor = reply["result"]["nextPageCursor"]
        if not cursor:
            break
        assert "%" in cursor
    exchange = pointed_at_sim.server.exchange
    expected = sorted(
        p.symbol
        for p in exchange.open_positions()
        if exchange.instruments[p.symbol].settle_coin == "USDT"
    )
    assert symbols == expected
    assert len(symbols) >= 2


def test_http_trading_stop_and_not_modified(pointed_at_sim: ThreadedSim) -> None:
    session = _http(pointed_at_sim)
    args = {"category": "linear", "symbol": "BTCUSDT", "positionIdx": 0, "tpslMode": "Full"}
    reply = session.set_trading_stop(**args, stopLoss="60000", slTriggerBy="MarkPrice")
    assert reply["retCode"] == 0
    with pytest.raises(InvalidRequestError) as err:
        session.set_trading_stop(**args, stopLoss="60000", slTriggerBy="MarkPrice")
    assert err.value.status_code == 34040
    with pytest.raises(InvalidRequestError) as err:
        session.set_trading_stop(**{**args, "symbol": "DOGEUSDT"}, stopLoss="0.1")
    assert err.value.status_code == 10001
    assert "zero position" in err.value.message


def test_http_place_order(pointed_at_sim: ThreadedSim) -> None:
    session = _http(pointed_at_sim)
    reply = session.place_order(
        category="linear", symbol="BNBUSDT", side="Sell", orderType="Market", qty="0.3"
    )
    assert reply["retCode"] == 0
    assert reply["result"]["orderId"]
    position = session.get_positions(category="linear", symbol="BNBUSDT")["result"]["list"][0]
    assert (position["side"], position["size"]) == ("Sell", "0.3")
    assert "avgPrice" in position
