"""A `BybitHybridStream` wired to the embedded simulator, recording what a consumer would see.

Every wait goes through `tests.support.wait_for` with a multiple of `UNIT_S`. `close()` is also
the common post-condition of every stream test: no handler error, every delivered dict on the
DESIGN §4 contract, no task left behind and no socket left open on the simulator's side.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final, TypeVar

import pytest

from bybit_hybrid import BybitHybridStream
from bybit_hybrid.facade import PositionStream
from bybit_hybrid.protocol.backoff import BackoffPolicy
from bybit_hybrid.protocol.connects import ConnectBudgetConfig
from bybit_hybrid.protocol.hybrid import PRIVATE, CoreEvent, HybridConfig
from bybit_hybrid.protocol.session import SessionConfig, SessionState, StateChanged
from bybit_hybrid.sim import ConnKind, EventKind, SimConfig, SimServer
from bybit_hybrid.sim.connections import SimConnection
from bybit_hybrid.transport.http import HttpBackend
from bybit_hybrid.transport.ws import WS_BACKENDS, WsBackendName
from tests.support import CONTRACT_KEYS, UNIT_S, wait_for

PUBLIC: Final = "public-1"
DECIMAL_KEYS: Final = (
    "size",
    "entry_price",
    "mark_price",
    "unrealized_pnl",
    "leverage",
    "stop_loss",
    "take_profit",
)

# What a mark revaluation may change; anything else changing is a position event.
_REVALUATION_KEYS: Final = frozenset(
    {"mark_price", "unrealized_pnl", "source", "exchange_ts", "cs"}
)

# Fast timings so a dead socket is noticed in about a second (BYBIT_V5 §3 scaled down).
BACKOFF: Final = BackoffPolicy(initial_s=0.05 * UNIT_S, factor=2.0, max_s=0.4 * UNIT_S)
SESSION: Final = SessionConfig(
    ping_interval_s=1 * UNIT_S,
    pong_timeout_s=0.5 * UNIT_S,
    stale_after_s=1.5 * UNIT_S,
    auth_timeout_s=2 * UNIT_S,
    connect_timeout_s=2 * UNIT_S,
    backoff=BACKOFF,
    # Test scale for the wait after a rejected auth too (production: 2 s growing to 60 s).
    auth_retry_backoff=BACKOFF,
)
# The shared connection budget's outage pacing scaled with the backoff (production: 1 s).
CONNECTS: Final = ConnectBudgetConfig(outage_interval_s=0.05 * UNIT_S)
CONFIG: Final = HybridConfig(session=SESSION, rest_backoff=BACKOFF, connect_budget=CONNECTS)

E = TypeVar("E")
Key = tuple[str, int]


@dataclass(frozen=True, slots=True)
class Delivered:
    """One `event_handler` call, stamped with the monotonic time it arrived."""

    at: float
    name: str
    payload: dict[str, Any]

    @property
    def data(self) -> dict[str, Any]:
        data: dict[str, Any] = self.payload["data"]
        return data

    @property
    def key(self) -> Key:
        return (self.data["symbol"], self.data["position_idx"])


@dataclass
class Recorder:
    """The consumer side: the event handler and a core listener, both time-stamping.

    `work_s` makes the handler a slow consumer; `fail` makes it raise for matching events
    (counted in `raised`, which must equal the stream's `handler_errors`).
    """

    work_s: float = 0.0
    fail: Callable[[dict[str, Any]], bool] | None = None
    delivered: list[Delivered] = field(default_factory=list)
    core_events: list[tuple[float, CoreEvent]] = field(default_factory=list)
    raised: int = 0

    async def handler(self, name: str, payload: dict[str, Any]) -> None:
        self.delivered.append(Delivered(time.monotonic(), name, payload))
        if self.work_s:
            await asyncio.sleep(self.work_s)  # the consumer's own work, not a wait for logic
        if self.fail is not None and self.fail(payload["data"]):
            self.raised += 1
            raise RuntimeError(f"consumer failed on {payload['data']['symbol']}")

    def listener(self, event: CoreEvent) -> None:
        self.core_events.append((time.monotonic(), event))


@dataclass
class Harness:
    """What every integration harness holds (a stream on a simulator, a recorder) and checks
    on `close()`: every delivery honours the contract, handler errors are counted, `stop()`
    leaves no task behind and the simulator sees every socket close."""

    sim: SimServer
    stream: PositionStream
    rec: Recorder
    tasks_before: set[asyncio.Task[Any]]
    closed: bool = False

    @property
    def delivered(self) -> list[Delivered]:
        return self.rec.delivered

    @property
    def core_events(self) -> list[tuple[float, CoreEvent]]:
        return self.rec.core_events

    def of_type(self, kind: type[E], since_t: float = 0.0) -> list[E]:
        return [e for t, e in self.core_events if t >= since_t and isinstance(e, kind)]

    def assert_clean(self) -> None:
        stats = self.stream.get_stats()
        assert stats["handler_errors"] == self.rec.raised
        for d in self.delivered:
            assert d.name == "position_update"
            assert d.payload.keys() == {"exchange", "data"}
            assert d.payload["exchange"] == "bybit"
            assert_contract(d.data)

    async def close(self) -> None:
        """Stops the stream and checks what every test must leave behind."""
        if self.closed:
            return
        self.closed = True
        self.assert_clean()
        await self.stream.stop()
        client_side = [t for t in self.new_tasks() if not is_server_task(t)]
        assert not client_side, f"tasks left behind by stop(): {client_side}"
        await wait_for(
            lambda: not self.sim.connections, 2 * UNIT_S, "the simulator to see every socket close"
        )
        # The simulator's per-connection handlers end once they see the closes.
        await wait_for(lambda: not self.new_tasks(), 2 * UNIT_S, "server handlers to finish")

    def new_tasks(self) -> set[asyncio.Task[Any]]:
        return asyncio.all_tasks() - self.tasks_before - {asyncio.current_task()}


@dataclass
class StreamHarness(Harness):
    stream: BybitHybridStream

    # --- queries -------------------------------------------------------------------------

    def datas(self, since: int = 0) -> list[dict[str, Any]]:
        return [d.data for d in self.delivered[since:]]

    def non_ticker(self, since: int = 0, symbol: str | None = None) -> list[dict[str, Any]]:
        """Delivered dicts not caused by a ticker frame (opens, changes, closes, REST seeds)."""
        return [
            d
            for d in self.datas(since)
            if d["source"] != "ticker" and (symbol is None or d["symbol"] == symbol)
        ]

    def position_events(self, since: int = 0, symbol: str | None = None) -> list[dict[str, Any]]:
        """Opens, changes and closes as a consumer tells them apart from revaluations: the
        first event of a key, a close, or a change in anything but the mark and its stamps."""
        last: dict[Key, dict[str, Any]] = {}
        found: list[dict[str, Any]] = []
        for index, d in enumerate(self.delivered):
            before = last.get(d.key)
            relevant = {k: v for k, v in d.data.items() if k not in _REVALUATION_KEYS}
            wanted = index >= since and (symbol is None or d.data["symbol"] == symbol)
            if wanted and relevant != before:
                found.append(d.data)
            if d.data["status"] == "closed":
                last.pop(d.key, None)
            else:
                last[d.key] = relevant
        return found

    def ticker_marks(self, symbol: str, since: int = 0) -> list[Decimal]:
        return [
            d["mark_price"]
            for d in self.datas(since)
            if d["source"] == "ticker" and d["symbol"] == symbol
        ]

    def state(self, name: str) -> SessionState:
        return self.stream.core.session(name).state

    def transitions(self, name: str, new: SessionState, since_t: float = 0.0) -> list[float]:
        """When `name` entered `new` (monotonic times)."""
        return [
            t
            for t, e in self.core_events
            if t >= since_t
            and isinstance(e, StateChanged)
            and e.connection == name
            and e.new is new
        ]

    def entered(
        self, name: str, new: SessionState, since_t: float, times: int = 1
    ) -> Callable[[], bool]:
        """A `wait_for` condition: `name` entered `new` at least `times` times since `since_t`."""
        return lambda: len(self.transitions(name, new, since_t)) >= times

    def confirmed_tickers(self) -> set[str]:
        """Ticker topics the stream holds as live (acked, unsubscribe not yet acked)."""
        core = self.stream.core
        return {
            topic
            for name in core.sockets()
            if name != PRIVATE
            for topic in core.session(name).subscriptions.confirmed
        }

    def is_live(self) -> bool:
        """Both sockets LIVE and exactly the open symbols' tickers confirmed, none in flight."""
        core = self.stream.core
        if any(core.session(name).state is not SessionState.LIVE for name in core.sockets()):
            return False
        if "position" not in core.session(PRIVATE).subscriptions.confirmed:
            return False
        # Compared as sets: a count could match while one topic is still being released and
        # another still being subscribed.
        wanted = {f"tickers.{symbol}" for symbol in core.book.open_symbols()}
        if self.confirmed_tickers() != wanted:
            return False
        return bool(self.stream.get_stats()["subscribed_tickers"] == len(wanted))

    def sim_conns(self, kind: ConnKind) -> list[SimConnection]:
        return [c for c in self.sim.connections if c.kind is kind]

    def sim_ticker_topics(self) -> set[str]:
        """Ticker topics the simulator has on its public connections (its own truth)."""
        return {t for c in self.sim_conns(ConnKind.PUBLIC) for t in c.topics}

    # --- waiting -------------------------------------------------------------------------

    async def wait_live(self, timeout_s: float = 3 * UNIT_S, what: str = "stream live") -> None:
        await wait_for(self.is_live, timeout_s, what)

    async def wait_delivered(
        self,
        match: Callable[[dict[str, Any]], bool],
        since: int = 0,
        timeout_s: float = 3 * UNIT_S,
        what: str = "event",
    ) -> Delivered:
        """The first delivered event from index `since` on that `match`es."""
        found: list[Delivered] = []

        def seen() -> bool:
            found[:] = [d for d in self.delivered[since:] if match(d.data)]
            return bool(found)

        await wait_for(seen, timeout_s, what)
        return found[0]

    async def prove_marks_flow(self, symbols: Iterable[str], steps: int = 3) -> None:
        """Forces a new mark on each symbol and waits for the ticker-sourced event carrying it.

        The symbol's random walk is paused meanwhile, so the forced value cannot be overtaken
        (and conflated away) by a walk tick before the handler sees it.
        """
        for symbol in symbols:
            self.sim.pause_ticks(symbol)
            try:
                tick = self.sim.exchange.instruments[symbol].tick_size
                mark = self.sim.exchange.prices.mark(symbol) + steps * tick
                since = len(self.delivered)
                await self.sim.set_mark(symbol, mark)
                await self.wait_delivered(
                    _ticker_with(symbol, mark), since, what=f"ticker mark {mark} for {symbol}"
                )
            finally:
                self.sim.resume_ticks(symbol)

    # --- checks --------------------------------------------------------------------------

    def lifecycle(self) -> dict[Key, list[str]]:
        """Opens and closes per key, as a consumer reconstructs them from `status`."""
        open_keys: set[Key] = set()
        seen: dict[Key, list[str]] = {}
        for d in self.delivered:
            key = d.key
            if d.data["status"] == "closed":
                assert key in open_keys, f"close of {key} that was never open: {d.data}"
                open_keys.discard(key)
                seen.setdefault(key, []).append("close")
            elif key not in open_keys:
                open_keys.add(key)
                seen.setdefault(key, []).append("open")
        return seen

    def exchange_lifecycle(self) -> dict[Key, list[str]]:
        """The simulator's own record of opens and closes (its history, from the start)."""
        seen: dict[Key, list[str]] = {}
        for event in self.sim.exchange.history:
            if event.kind in (EventKind.OPEN, EventKind.CLOSE) and event.position_idx is not None:
                key = (event.symbol, event.position_idx)
                seen.setdefault(key, []).append(event.kind.value)
        return seen

    def assert_in_sync(self) -> None:
        """No open or close lost or invented, and the book equals the exchange's positions."""
        assert self.lifecycle() == self.exchange_lifecycle()
        book = {
            (v.key.symbol, v.key.idx): (v.side.value if v.side else None, v.size, v.entry_price)
            for v in self.stream.positions()
        }
        exchange = {
            (p.symbol, p.idx): (p.side.value, p.size, p.avg_price)
            for p in self.sim.exchange.open_positions()
        }
        assert book == exchange


def _ticker_with(symbol: str, mark: Decimal) -> Callable[[dict[str, Any]], bool]:
    def match(data: dict[str, Any]) -> bool:
        return bool(
            data["symbol"] == symbol and data["source"] == "ticker" and data["mark_price"] == mark
        )

    return match


def is_server_task(task: asyncio.Task[Any]) -> bool:
    """A task of the simulator's HTTP server (one per accepted connection), not the client's."""
    code = getattr(task.get_coro(), "cr_code", None)
    filename = code.co_filename if code is not None else ""
    return filename.endswith(("web_protocol.py", "web_server.py")) or "/sim/" in filename


def assert_contract(data: dict[str, Any]) -> None:
    """One `data` dict against DESIGN §4."""
    assert data.keys() == CONTRACT_KEYS, sorted(data.keys() ^ CONTRACT_KEYS)
    for name in DECIMAL_KEYS:
        value = data[name]
        assert value is None or type(value) is Decimal, (name, value)
    assert isinstance(data["size"], Decimal)
    assert data["source"] in ("ticker", "position", "rest")
    assert data["status"] in ("open", "closed")
    assert data["side"] in ("Buy", "Sell")
    assert isinstance(data["position_idx"], int)
    assert isinstance(data["exchange_ts"], int)
    if data["source"] == "ticker":
        assert isinstance(data["cs"], int)
    else:
        assert data["cs"] is None
    if data["status"] == "closed":
        assert data["size"] == 0
        assert data["entry_price"] is not None
    else:
        assert data["size"] > 0


# The WebSocket backend `start_stream` uses unless told; the `ws_backend_name` fixture
# (tests/integration/conftest.py) sets it, and runs a module over both when parametrised.
WS_BACKEND: list[WsBackendName] = ["picows"]


@pytest.fixture(name="ws_backend_name", autouse=True, params=WS_BACKENDS)
def ws_backend_each(request: pytest.FixtureRequest) -> Iterator[WsBackendName]:
    """Bound in a module as `ws_backend_name = stream_harness.ws_backend_each` (never imported
    by name), it runs every test there once per WebSocket backend (picows, then aiohttp)."""
    yield from use_ws_backend(request.param)


def use_ws_backend(name: WsBackendName) -> Iterator[WsBackendName]:
    """Makes `start_stream` (and so the `h` fixture) use backend `name` for one test."""
    previous = WS_BACKEND[0]
    WS_BACKEND[0] = name
    try:
        yield name
    finally:
        WS_BACKEND[0] = previous


async def start_stream(
    sim: SimServer,
    *,
    config: HybridConfig = CONFIG,
    max_active_time_s: int | None = None,
    wait: bool = True,
    rec: Recorder | None = None,
    ws_backend: WsBackendName | None = None,
    http_backend: HttpBackend | None = None,
) -> StreamHarness:
    """Starts a stream against `sim`; with `wait`, returns once it is bootstrapped and LIVE."""
    tasks_before = asyncio.all_tasks()
    rec = rec or Recorder()
    stream = BybitHybridStream(
        sim.api_key,
        sim.api_secret,
        rec.handler,
        base_url=sim.base_url,
        config=config,
        max_active_time_s=max_active_time_s,
        rng=random.Random(7),
        ws_backend=ws_backend or WS_BACKEND[0],
        http_backend=http_backend,
    )
    stream.add_listener(rec.listener)
    harness = StreamHarness(sim, stream, rec, tasks_before)
    await stream.start()
    if wait:
        await harness.stream.wait_ready(3 * UNIT_S)
        await harness.wait_live()
    return harness


def sim_config(**overrides: Any) -> SimConfig:
    """Five symbols, BTCUSDT (Buy 0.001) and ETHUSDT (Sell 0.02) open at start."""
    values: dict[str, Any] = {"symbols": 5, "positions": 2, "seed": 1, "rate_hz": 10.0}
    values.update(overrides)
    return SimConfig(**values)
