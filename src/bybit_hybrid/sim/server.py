"""aiohttp shell of the simulator: Bybit V5 WebSockets and REST on one port, plus /sim/ control."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final
from urllib.parse import parse_qsl

from aiohttp import WSMsgType, web

from bybit_hybrid.sim import frames
from bybit_hybrid.sim.accounts import (
    MAX_ACCOUNTS,
    Accounts,
    SimAccount,
    account_name,
    demo_credentials,
)
from bybit_hybrid.sim.connections import ConnState, SimConnection
from bybit_hybrid.sim.control import ControlPlane, control_routes
from bybit_hybrid.sim.control_api import AccountControl, MarketControl
from bybit_hybrid.sim.exchange import Exchange, ExchangeError
from bybit_hybrid.sim.failover_faults import FailoverFaults
from bybit_hybrid.sim.fault_control import FaultController, coerce_target
from bybit_hybrid.sim.faults import ConnKind, RestErrorMode, Target
from bybit_hybrid.sim.frames import envelope
from bybit_hybrid.sim.history import CloseReason
from bybit_hybrid.sim.positions import PositionMode, Side
from bybit_hybrid.sim.ratelimit import DEFAULT_LIMITS_PER_S, LimitDecision, RollingLimiter
from bybit_hybrid.sim.scenarios import SCENARIOS, run_scenario
from bybit_hybrid.sim.trading_faults import (
    ORDER_PATH,
    STOP_PATH,
    TradingFaultState,
    parse_fault_spec,
)
from bybit_hybrid.sim.trading_shell import serve_trading
from bybit_hybrid.wire.signing import rest_payload, verify, ws_auth_payload

log = logging.getLogger(__name__)

# Public demo credentials of the simulator: safe to print, useless anywhere else.
DEMO_API_KEY: Final = "SIMDEMOKEY000001"
DEMO_API_SECRET: Final = "SIMDEMOSECRET00000000000000000001"
PUBLIC_PATH: Final = "/v5/public/linear"
PRIVATE_PATH: Final = "/v5/private"
DEFAULT_RECV_WINDOW_MS: Final = 5000
MAX_ACTIVE_MIN_S: Final = 30
MAX_ACTIVE_MAX_S: Final = 600
_MAX_ACTIVE_RE: Final = re.compile(r"^(\d+)([sm])$")
POSITION_LIST_PATH: Final = "/v5/position/list"
_PRIVATE_TOPICS: Final = frozenset(
    {
        "position",
        "position.linear",
        "order",
        "order.linear",
        "execution",
        "execution.linear",
        "wallet",
    }
)
_BAD_GATEWAY_HTML: Final = "<html><body><h1>502 Bad Gateway</h1></body></html>"


@dataclass(frozen=True, slots=True)
class SimConfig:
    """Everything the simulator needs; the secret is kept out of repr."""

    symbols: int = 10
    positions: int = 0
    rate_hz: float = 10.0
    seed: int = 1
    host: str = "127.0.0.1"
    port: int = 0
    api_key: str = DEMO_API_KEY
    api_secret: str = field(default=DEMO_API_SECRET, repr=False)
    idle_scan_s: float = 30.0
    default_max_active_s: float = 600.0
    scenario: str = "quiet"
    scenario_period_s: float = 2.0
    send_queue_max: int = 10_000
    rate_limits_per_s: Mapping[str, int] = field(default_factory=lambda: DEFAULT_LIMITS_PER_S)
    # Benchmark-only extension (not Bybit's): ticker data carries `simSendUs`, the epoch time in
    # microseconds at which the frame was handed to the socket, so a client on the same machine
    # can measure sim-write -> callback latency below the 1 ms resolution of `ts`.
    stamp_send_us: bool = False
    # How each tick is spread over its interval: 1 sends every symbol's delta in one burst (the
    # default); N ticks symbol i in slice i % N, the slices evenly spaced, so each symbol still
    # ticks at `rate_hz` but the frames arrive spread out (Bybit does not document whether its
    # per-symbol pushes are aligned; benchmarks measure both shapes).
    tick_slices: int = 1
    # Trading faults armed at start (`--trading-fault`, see sim/trading_faults.parse_fault_spec):
    # e.g. ("trading-stop:10006,seconds=30",) to watch a bot ride out a rate-limit window.
    trading_faults: tuple[str, ...] = ()
    # With `tick_slices` N > 1: each symbol's slice is drawn at random instead of i % N, so the
    # symbols tick on independent phases (some slices empty, some with several symbols).
    random_phases: bool = False
    # Accounts in the simulator (`--accounts`): the first uses api_key/api_secret, account i
    # (1-based) the public demo pair SIMDEMOKEY00000i (sim/accounts.demo_credentials).
    accounts: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.accounts <= MAX_ACCOUNTS:
            raise ValueError(f"accounts must be between 1 and {MAX_ACCOUNTS}")
        if self.symbols < 1:
            raise ValueError("symbols must be at least 1")
        if not 0 <= self.positions <= self.symbols:
            raise ValueError("positions must be between 0 and symbols")
        if not 0 < self.rate_hz <= 1000:
            raise ValueError("rate_hz must be in (0, 1000]")
        if not 1 <= self.tick_slices <= 1000 or self.rate_hz * self.tick_slices > 10_000:
            raise ValueError("tick_slices must be in [1, 1000] and rate_hz * tick_slices <= 10000")
        if self.idle_scan_s <= 0:
            raise ValueError("idle_scan_s must be positive")
        if not self.api_key or not self.api_secret:
            raise ValueError("api_key and api_secret must be non-empty")
        if self.scenario not in SCENARIOS:
            raise ValueError(f"scenario must be one of {', '.join(SCENARIOS)}")
        for spec in self.trading_faults:
            parse_fault_spec(spec)


def parse_max_active_time(raw: str) -> float:
    """`30s`..`600s` or `1m`..`10m` -> seconds; ValueError outside Bybit's documented range."""
    match = _MAX_ACTIVE_RE.match(raw)
    if match is None:
        raise ValueError(f"max_active_time {raw!r} is not like 45s or 2m")
    seconds = int(match[1]) * (60 if match[2] == "m" else 1)
    if not MAX_ACTIVE_MIN_S <= seconds <= MAX_ACTIVE_MAX_S:
        raise ValueError(f"max_active_time {raw!r} is outside 30s..600s")
    return float(seconds)


# (the calling account's exchange, params, now_ms, raw body) -> result object
RestCall = Callable[[Exchange, Mapping[str, Any], int, str], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class _Endpoint:
    method: str
    signed: bool
    call: RestCall


class SimServer:
    """The embedded Bybit V5 simulator. Use as `async with SimServer(SimConfig(...)) as sim:`."""

    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config or SimConfig()
        self.accounts = Accounts(
            _account_keys(self.config), self.config.symbols, self.config.seed, self.now_ms()
        )
        # The default account's exchange; the market (instruments, prices) is everyone's.
        self.exchange: Exchange = self.accounts.default.exchange
        self.trading_faults = TradingFaultState()
        if self.config.random_phases:
            self.exchange.prices.random_phases(self.config.tick_slices, self.config.seed)
        self.faults = FaultController(self)
        self.failover_faults = FailoverFaults()
        # Set on stop(): requests held without a reply (trading faults) end at once.
        self.stopping = asyncio.Event()
        self.connections: set[SimConnection] = set()
        self._subs: dict[str, set[SimConnection]] = {}
        self._limiter = RollingLimiter(self.config.rate_limits_per_s)
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._push_counter = 0
        self.port = 0
        self.market = MarketControl(
            self.accounts, self.now_ms, self._broadcast_tickers, self._flush_pushes
        )
        self._controls = {
            acct.name: AccountControl(acct, self.now_ms, self._flush_pushes)
            for acct in self.accounts
        }

    def __repr__(self) -> str:
        return (
            f"SimServer(base_url={self.base_url!r}, symbols={self.config.symbols}, "
            f"accounts={len(self.accounts)})"
        )

    def account(self, name: str | None = None) -> AccountControl:
        """The control API of the named account (None: the default, first one)."""
        return self._controls[self.accounts.get(name).name]

    # -- lifecycle --------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        host = self.config.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}"

    @property
    def public_ws_url(self) -> str:
        return self.base_url.replace("http://", "ws://", 1) + PUBLIC_PATH

    @property
    def private_ws_url(self) -> str:
        return self.base_url.replace("http://", "ws://", 1) + PRIVATE_PATH

    @property
    def api_key(self) -> str:
        return self.config.api_key

    @property
    def api_secret(self) -> str:
        return self.config.api_secret

    async def __aenter__(self) -> SimServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Binds the port, opens the initial positions, starts ticks, idle scan and scenario."""
        self.stopping.clear()
        self._runner = web.AppRunner(self._build_app(), handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.host, self.config.port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        self._open_initial_positions()
        for spec in self.config.trading_faults:
            self.faults.arm_spec(parse_fault_spec(spec))
        self._tasks.append(asyncio.create_task(self._tick_loop(), name="sim-ticks"))
        self._tasks.append(asyncio.create_task(self._idle_scan_loop(), name="sim-idle-scan"))
        for index, control in enumerate(self._controls.values()):
            scenario = run_scenario(
                self.config.scenario,
                control,
                self.market,
                period_s=self.config.scenario_period_s,
                seed=self.config.seed + index,
            )
            self._tasks.append(asyncio.create_task(scenario, name=f"sim-scenario-{control.name}"))
        log.info("sim listening on %s", self.base_url)

    async def stop(self) -> None:
        self.stopping.set()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        for conn in list(self.connections):
            conn.abort()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def _open_initial_positions(self) -> None:
        """`positions` positions on each account: account k starts k symbols further along
        and on the other side, so the accounts' books differ."""
        names = list(self.exchange.instruments)
        now_ms = self.now_ms()
        for k, acct in enumerate(self.accounts):
            for i in range(self.config.positions):
                symbol = names[(i + k) % len(names)]
                inst = self.exchange.instruments[symbol]
                side = Side.BUY if (i + k) % 2 == 0 else Side.SELL
                qty = inst.min_order_qty * (1 + (i + k) % 5)
                acct.exchange.market_order(symbol, side, qty, 0, now_ms, source=CloseReason.CONTROL)
        self.accounts.drain_pushes()

    def _build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get(PUBLIC_PATH, self._public_ws)
        app.router.add_get(PRIVATE_PATH, self._private_ws)
        app.router.add_get("/v5/market/time", self._market_time)
        for path, endpoint in self._endpoints().items():
            app.router.add_route(endpoint.method, path, self._rest_route(path, endpoint))
        for path, (method, handler) in self._control_routes().items():
            app.router.add_route(method, path, self._control_route(handler))
        return app

    # -- ticks ------------------------------------------------------------------------------

    async def _tick_loop(self) -> None:
        loop = asyncio.get_running_loop()
        slices = self.config.tick_slices
        interval_s = 1.0 / (self.config.rate_hz * slices)
        next_s = loop.time()
        slice_index = 0
        while True:
            next_s += interval_s
            delay_s = next_s - loop.time()
            if delay_s < -interval_s:
                next_s = loop.time()  # fell behind: skip, do not burst
            await asyncio.sleep(max(0.0, delay_s))
            # A lagging position/list needs the past even while the market is paused.
            self.failover_faults.record(self.exchange.positions, self.now_ms())
            if self.market.paused:
                continue
            try:
                self._tick(self.now_ms(), slice_index, slices)
            except Exception:  # a bug in one tick must not stop the market
                log.exception("sim: tick failed")
            slice_index = (slice_index + 1) % slices

    def _tick(self, now_ms: int, slice_index: int = 0, slices: int = 1) -> None:
        changes = self.accounts.step(now_ms, slice_index, slices)
        self._broadcast_tickers(changes, now_ms)
        self._flush_pushes()

    def _broadcast_tickers(self, changes: Mapping[str, tuple[str, ...]], now_ms: int) -> None:
        """Builds each symbol's delta once and queues the same text for every subscriber."""
        subs_by_topic = self._subs
        faults = self.faults.state
        tickers = self.exchange.prices.tickers
        for symbol, names in changes.items():
            subs = subs_by_topic.get("tickers." + symbol)
            if not subs or symbol in faults.muted:
                continue
            ticker = tickers[symbol]
            data = {"symbol": symbol}
            for name in names:
                data[name] = ticker.fields[name]
            if symbol in faults.stale_marks:
                data.pop("markPrice", None)
                if len(data) == 1:
                    continue
            if self.config.stamp_send_us:
                data["simSendUs"] = frames.SEND_STAMP_PLACEHOLDER
            text = frames.ticker_frame(symbol, "delta", data, ticker.cs, now_ms)
            for conn in subs:
                conn.push(text)

    def _snapshot_frame(self, symbol: str, now_ms: int) -> str:
        ticker = self.exchange.prices.tickers[symbol]
        data = dict(ticker.fields)
        stale = self.faults.state.stale_marks.get(symbol)
        if stale is not None:
            data["markPrice"] = stale
        if self.config.stamp_send_us:
            data["simSendUs"] = frames.SEND_STAMP_PLACEHOLDER
        return frames.ticker_frame(symbol, "snapshot", data, ticker.cs, now_ms)

    def flush_pushes(self) -> None:
        self._flush_pushes()

    def _flush_pushes(self) -> None:
        """Sends each account's queued pushes to the private sockets authenticated as it."""
        for acct, push in self.accounts.drain_pushes():
            for topic in (push.topic, push.topic + ".linear"):
                subs = [c for c in self._subs.get(topic, ()) if c.account == acct.name]
                if not subs:
                    continue
                self._push_counter += 1
                push_id = f"{self._push_counter}{uuid.uuid4()}"
                text = frames.private_push(push_id, topic, push.creation_ms, push.rows)
                for conn in subs:
                    conn.push(text)

    async def _idle_scan_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.idle_scan_s)
            for conn in list(self.connections):
                if conn.idle_s() > conn.max_active_s:
                    log.info("sim: idle cut of %s after %.1fs", conn.conn_id, conn.idle_s())
                    conn.abort()

    # -- WebSocket --------------------------------------------------------------------------

    async def _public_ws(self, request: web.Request) -> web.StreamResponse:
        return await self._serve_ws(request, ConnKind.PUBLIC, self.config.default_max_active_s)

    async def _private_ws(self, request: web.Request) -> web.StreamResponse:
        raw = request.query.get("max_active_time")
        max_active_s = self.config.default_max_active_s
        if raw is not None:
            try:
                max_active_s = parse_max_active_time(raw)
            except ValueError as exc:
                return web.Response(status=400, text=str(exc))
        return await self._serve_ws(request, ConnKind.PRIVATE, max_active_s)

    async def _serve_ws(
        self, request: web.Request, kind: ConnKind, max_active_s: float
    ) -> web.StreamResponse:
        if self.faults.state.refusing(time.monotonic()):
            return web.Response(status=503, text="503 Service Temporarily Unavailable")
        ws = web.WebSocketResponse(autoping=False, compress=False, timeout=2.0)
        await ws.prepare(request)
        conn = SimConnection(
            kind=kind,
            conn_id=_new_conn_id(kind),
            ws=ws,
            request=request,
            max_active_s=max_active_s,
            queue_max=self.config.send_queue_max,
            clock_s=time.monotonic,
            delay_ms=lambda: self.faults.state.delay_ms,
            stamp_send_us=self.config.stamp_send_us,
        )
        conn.silent = self.failover_faults.blackholed(kind)
        self.connections.add(conn)
        try:
            async for msg in ws:
                await self._on_ws_message(conn, msg.type, msg.data)
        finally:
            self._forget(conn)
            await conn.shutdown()
        return ws

    def _forget(self, conn: SimConnection) -> None:
        self.connections.discard(conn)
        for topic in conn.topics:
            subs = self._subs.get(topic)
            if subs is not None:
                subs.discard(conn)
                if not subs:
                    del self._subs[topic]

    async def _on_ws_message(self, conn: SimConnection, msg_type: WSMsgType, data: Any) -> None:
        if msg_type is WSMsgType.PING:
            if not conn.silent:
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await conn.ws.pong(data)
        elif msg_type is WSMsgType.TEXT:
            self._on_text(conn, data)
        elif msg_type is WSMsgType.BINARY:
            self._on_text(conn, bytes(data).decode("utf-8", "replace"))

    def _reply(
        self, conn: SimConnection, op: str, req_id: Any, success: bool, ret_msg: str = ""
    ) -> None:
        build = frames.public_reply if conn.kind is ConnKind.PUBLIC else frames.private_reply
        conn.reply(build(conn.conn_id, op, req_id, success, ret_msg))

    def _on_text(self, conn: SimConnection, text: str) -> None:
        try:
            msg = json.loads(text)
        except ValueError:
            msg = None
        if not isinstance(msg, dict):
            self._reply(conn, "", None, False, frames.decode_error_text(text))
            return
        op = msg.get("op")
        req_id = msg.get("req_id")
        handlers: dict[Any, Callable[[SimConnection, dict[str, Any], Any], None]] = {
            "ping": self._on_ping,
            "subscribe": self._on_subscribe,
            "unsubscribe": self._on_unsubscribe,
        }
        if conn.kind is ConnKind.PRIVATE:
            handlers["auth"] = self._on_auth
        handler = handlers.get(op)
        if handler is None:
            self._reply(conn, op if isinstance(op, str) else "", req_id, False, "error:invalid op")
            return
        try:
            handler(conn, msg, req_id)
        except Exception:  # bad input must get a reply, never kill the socket
            log.exception("sim: handler for op %r failed", op)
            self._reply(conn, str(op), req_id, False, "error:internal error")

    def _on_ping(self, conn: SimConnection, msg: dict[str, Any], req_id: Any) -> None:
        conn.note_ping()
        if conn.kind is ConnKind.PUBLIC:
            conn.reply(frames.public_pong(conn.conn_id, req_id))
        else:
            conn.reply(frames.private_pong(conn.conn_id, req_id, self.now_ms()))

    def _on_auth(self, conn: SimConnection, msg: dict[str, Any], req_id: Any) -> None:
        ok = not self.faults.state.take_auth_rejection(time.monotonic())
        acct = self._auth_account(msg.get("args")) if ok else None
        ok = acct is not None
        if acct is not None:
            conn.state = ConnState.AUTHENTICATED
            conn.account = acct.name
        self._reply(conn, "auth", req_id, ok, "" if ok else "Params Error")

    def _auth_account(self, args: Any) -> SimAccount | None:
        """The account whose key signed these auth args, or None when they are not valid."""
        if not isinstance(args, list) or len(args) != 3:
            return None
        api_key, expires_raw, signature = args
        if isinstance(expires_raw, str) and expires_raw.isdigit():
            expires_raw = int(expires_raw)
        if not isinstance(expires_raw, int) or isinstance(expires_raw, bool):
            return None
        acct = self.accounts.by_key(api_key) if isinstance(api_key, str) else None
        if acct is None or not isinstance(signature, str) or expires_raw <= self.now_ms():
            return None
        if not verify(acct.api_secret, ws_auth_payload(expires_raw), signature):
            return None
        return acct

    def _topic_known(self, conn: SimConnection, topic: Any) -> bool:
        if not isinstance(topic, str):
            return False
        if conn.kind is ConnKind.PRIVATE:
            return topic in _PRIVATE_TOPICS
        return topic.startswith("tickers.") and topic[8:] in self.exchange.instruments

    def _validate_topics(
        self, conn: SimConnection, op: str, msg: dict[str, Any], req_id: Any
    ) -> list[str] | None:
        """The request's topics, or None after replying with Bybit's failure."""
        if conn.kind is ConnKind.PRIVATE and not conn.authenticated:
            self._reply(conn, op, req_id, False, "Request not authorized")
            return None
        args = msg.get("args")
        if not isinstance(args, list):
            args = [] if args is None else [args]
        for topic in args:
            if not self._topic_known(conn, topic):
                self._reply(conn, op, req_id, False, f"error:handler not found,topic:{topic}")
                return None
        for base in ("position", "order", "execution"):
            if base in args and f"{base}.linear" in args:
                self._reply(
                    conn,
                    op,
                    req_id,
                    False,
                    f"error:all-in-one and categorised topics in one request,topic:{base}.linear",
                )
                return None
        return list(dict.fromkeys(args))

    def _on_subscribe(self, conn: SimConnection, msg: dict[str, Any], req_id: Any) -> None:
        topics = self._validate_topics(conn, "subscribe", msg, req_id)
        if topics is None:
            return
        already = [t for t in topics if t in conn.topics]
        fresh = [t for t in topics if t not in conn.topics]
        for topic in fresh:
            conn.topics.add(topic)
            self._subs.setdefault(topic, set()).add(conn)
        if already:
            self._reply(
                conn, "subscribe", req_id, False, f"error:already subscribed,topic:{already[0]}"
            )
        else:
            self._reply(conn, "subscribe", req_id, True)
        if conn.kind is ConnKind.PUBLIC:
            self._send_snapshots(conn, fresh)

    def _send_snapshots(self, conn: SimConnection, topics: list[str]) -> None:
        now_ms = self.now_ms()
        for topic in topics:
            symbol = topic[len("tickers.") :]
            if symbol not in self.faults.state.muted:
                conn.push(self._snapshot_frame(symbol, now_ms))

    def _on_unsubscribe(self, conn: SimConnection, msg: dict[str, Any], req_id: Any) -> None:
        topics = self._validate_topics(conn, "unsubscribe", msg, req_id)
        if topics is None:
            return
        for topic in topics:
            if topic in conn.topics:
                conn.topics.discard(topic)
                subs = self._subs.get(topic)
                if subs is not None:
                    subs.discard(conn)
        self._reply(conn, "unsubscribe", req_id, True)

    # -- REST -------------------------------------------------------------------------------

    def _endpoints(self) -> dict[str, _Endpoint]:
        return {
            "/v5/market/tickers": _Endpoint("GET", False, lambda ex, p, _t, _r: ex.tickers(p)),
            "/v5/market/instruments-info": _Endpoint(
                "GET", False, lambda ex, p, _t, _r: ex.instruments_info(p)
            ),
            POSITION_LIST_PATH: _Endpoint("GET", True, self._position_list),
            "/v5/position/trading-stop": _Endpoint(
                "POST", True, lambda ex, p, t, r: ex.trading_stop(p, t, r)
            ),
            "/v5/order/create": _Endpoint("POST", True, lambda ex, p, t, _r: ex.place_order(p, t)),
        }

    async def _market_time(self, request: web.Request) -> web.Response:
        now_ns = time.time_ns()
        result = {"timeSecond": str(now_ns // 1_000_000_000), "timeNano": str(now_ns)}
        return envelope(0, "OK", result, now_ns // 1_000_000)

    def _rest_route(
        self, path: str, endpoint: _Endpoint
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def route(request: web.Request) -> web.Response:
            raw_query = request.raw_path.partition("?")[2]
            raw_body = (await request.read()).decode("utf-8", "replace")
            if path in (STOP_PATH, ORDER_PATH):
                return await serve_trading(
                    self,
                    request,
                    path,
                    raw_body,
                    lambda: self._serve_rest(request, path, endpoint, raw_query, raw_body),
                    exchange=self._caller(request).exchange,
                )
            response = self._serve_rest(request, path, endpoint, raw_query, raw_body)
            if path == POSITION_LIST_PATH:
                delay_s = self.failover_faults.reorder_delay_s()
                if delay_s:
                    await asyncio.sleep(delay_s)  # computed now, delivered later: reordered
            return response

        return route

    def _caller(self, request: web.Request) -> SimAccount:
        """The account the request's key names (the default for an unknown key, which the
        signature check then refuses)."""
        acct = self.accounts.by_key(request.headers.get("X-BAPI-API-KEY", ""))
        return acct or self.accounts.default

    def _position_list(
        self, exchange: Exchange, params: Mapping[str, str], now_ms: int, _raw: str
    ) -> dict[str, Any]:
        """`position/list`, from a lagging state while `failover_faults` says so (the
        position-lag fault follows the default account)."""
        lagged = self.failover_faults.lagged_positions(now_ms)
        if lagged is None or exchange is not self.exchange:
            return exchange.position_list(params)
        live, exchange.positions = exchange.positions, dict(lagged)
        try:
            return exchange.position_list(params)
        finally:
            exchange.positions = live

    def _serve_rest(
        self,
        request: web.Request,
        path: str,
        endpoint: _Endpoint,
        raw_query: str,
        raw_body: str,
    ) -> web.Response:
        now_ms = self.now_ms()
        injected = self.faults.state.take_rest_error(path, endpoint.signed)
        if injected is not None:
            return self._injected_rest_error(injected, request, path, now_ms)
        signed_text = raw_query if endpoint.method == "GET" else raw_body
        decision: LimitDecision | None = None
        exchange = self.exchange
        try:
            if endpoint.signed:
                acct = self._check_signature(request, signed_text, now_ms)
                exchange = acct.exchange
                decision = self._limiter.hit(acct.api_key, path, now_ms)
                if decision is not None and not decision.allowed:
                    return envelope(10006, "Too many visits!", {}, now_ms, decision.headers())
            params = _parse_params(endpoint.method, raw_query, raw_body)
            result = endpoint.call(exchange, params, now_ms, raw_body)
        except ExchangeError as exc:
            extra = decision.headers() if decision is not None else {}
            return envelope(exc.ret_code, exc.ret_msg, {}, now_ms, extra)
        except Exception:  # a sim bug still answers in Bybit's envelope, never a bare 500
            log.exception("sim: %s failed", path)
            return envelope(10016, "Internal System Error.", {}, now_ms)
        finally:
            self._flush_pushes()
        extra = decision.headers() if decision is not None else {}
        return envelope(0, "OK", result, now_ms, extra)

    def _check_signature(self, request: web.Request, signed_text: str, now_ms: int) -> SimAccount:
        """The account whose key signed the request; Bybit's errors otherwise."""
        headers = request.headers
        api_key = headers.get("X-BAPI-API-KEY", "")
        acct = self.accounts.by_key(api_key)
        if acct is None:
            raise ExchangeError(10003, "API key is invalid.")
        ts_raw = headers.get("X-BAPI-TIMESTAMP", "")
        window_raw = headers.get("X-BAPI-RECV-WINDOW", str(DEFAULT_RECV_WINDOW_MS))
        if not ts_raw.isdigit() or not window_raw.isdigit():
            raise _timestamp_error(ts_raw, now_ms, window_raw)
        ts_ms, window_ms = int(ts_raw), int(window_raw)
        if not now_ms - window_ms <= ts_ms < now_ms + 1000:
            raise _timestamp_error(ts_raw, now_ms, window_raw)
        origin = rest_payload(api_key, ts_ms, window_ms, signed_text)
        if not verify(acct.api_secret, origin, headers.get("X-BAPI-SIGN", "")):
            raise ExchangeError(10004, f"error sign! origin_string[{origin}]")
        return acct

    def _injected_rest_error(
        self, mode: RestErrorMode, request: web.Request, path: str, now_ms: int
    ) -> web.Response:
        if mode is RestErrorMode.SERVER_ERROR:
            return web.Response(status=502, text=_BAD_GATEWAY_HTML, content_type="text/html")
        if mode is RestErrorMode.TIMESTAMP:
            ts_raw = request.headers.get("X-BAPI-TIMESTAMP", str(now_ms))
            window_raw = request.headers.get("X-BAPI-RECV-WINDOW", str(DEFAULT_RECV_WINDOW_MS))
            err = _timestamp_error(ts_raw, now_ms, window_raw)
            return envelope(err.ret_code, err.ret_msg, {}, now_ms)
        limit = self._limiter.limit_for(path) or 10
        headers = LimitDecision(False, limit, 0, now_ms + 1000).headers()
        return envelope(10006, "Too many visits!", {}, now_ms, headers)

    # -- control API (Python): the default account's and the market's ---------------------

    async def open_position(
        self,
        symbol: str,
        side: Side | str,
        qty: Decimal,
        position_idx: int = 0,
        open_time_ms: int | None = None,
    ) -> str:
        """Fills a market order as the control user of the default account; returns the order
        id. `open_time_ms` back-dates a new position's openTime (an aged one)."""
        return await self.account().open_position(symbol, side, qty, position_idx, open_time_ms)

    async def close_position(self, symbol: str, position_idx: int = 0) -> str:
        return await self.account().close_position(symbol, position_idx)

    async def change_position(self, symbol: str, position_idx: int = 0, **edits: Any) -> None:
        """Edits size (trades), stop_loss, take_profit, trailing_stop, leverage, open_time_ms."""
        await self.account().change_position(symbol, position_idx, **edits)

    async def set_position_mode(self, symbol: str, mode: PositionMode | str) -> None:
        await self.account().set_position_mode(symbol, mode)

    async def touch(self, symbol: str) -> None:
        """An order action that changes nothing; Bybit still pushes the position."""
        await self.account().touch(symbol)

    async def set_mark(self, symbol: str, price: Decimal) -> None:
        await self.market.set_mark(symbol, price)

    async def set_prices(
        self,
        symbol: str,
        *,
        mark: Decimal | None = None,
        last: Decimal | None = None,
        index: Decimal | None = None,
    ) -> None:
        """Forces prices now: pushes a ticker delta and fires any TP/SL they cross."""
        await self.market.set_prices(symbol, mark=mark, last=last, index=index)

    def set_trend(self, symbol: str, ticks_per_step: int) -> None:
        self.market.set_trend(symbol, ticks_per_step)

    # -- failover faults (sim/failover_faults.py) ------------------------------------------

    def lag_position_list(self, lag_ms: int) -> None:
        """`position/list` answers from the positions as they were `lag_ms` ago (0: off)."""
        self.failover_faults.set_lag(int(lag_ms), self.exchange.positions, self.now_ms())

    def reorder_position_list(self, reorder_ms: int) -> None:
        """Each `position/list` answer leaves after a random 0..`reorder_ms` delay (0: off)."""
        self.failover_faults.set_reorder(int(reorder_ms))

    def blackhole(self, target: Target | str = Target.ALL, on: bool = True) -> int:
        """Matching sockets, open and new, send nothing and answer no ping (TCP stays up)."""
        wanted = coerce_target(target)
        self.failover_faults.blackhole = wanted if on else None
        conns = [c for c in self.connections if wanted.matches(c.kind)]
        for conn in conns:
            conn.silent = on
        return len(conns)

    def set_quiet(self, symbol: str, quiet: bool = True) -> None:
        """A quiet market for `symbol` (see MarketControl.set_quiet)."""
        self.market.set_quiet(symbol, quiet)

    def pause_ticks(self, symbol: str | None = None) -> None:
        """Stops the walk for one symbol, or for all when `symbol` is None."""
        self.market.pause_ticks(symbol)

    def resume_ticks(self, symbol: str | None = None) -> None:
        self.market.resume_ticks(symbol)

    def state(self, account: str | None = None) -> dict[str, Any]:
        """The named account's positions (default: the first) with the market and sockets."""
        acct = self.accounts.get(account)
        return {
            **acct.exchange.state(),
            "account": acct.name,
            "accounts": self.accounts.names,
            "ticks_paused": self.market.paused,
            "connections": [
                {
                    "conn_id": c.conn_id,
                    "kind": c.kind.value,
                    "state": c.state.value,
                    "topics": sorted(c.topics),
                    "silent": c.silent,
                    "account": c.account,
                }
                for c in self.connections
            ],
            "faults": self.faults.to_json(),
        }

    # -- control routes (HTTP) --------------------------------------------------------------

    def _control_routes(self) -> dict[str, tuple[str, Callable[[dict[str, Any]], Awaitable[Any]]]]:
        plane = ControlPlane(
            account=self.account,
            market=self.market,
            faults=self.faults,
            state=self.state,
            lag_position_list=self.lag_position_list,
            reorder_position_list=self.reorder_position_list,
            blackhole=self.blackhole,
        )
        return control_routes(plane)

    def _control_route(
        self, handler: Callable[[dict[str, Any]], Awaitable[Any]]
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def route(request: web.Request) -> web.Response:
            body: Any = dict(request.query)
            if request.method == "POST" and request.can_read_body:
                try:
                    body = await request.json()
                except ValueError:
                    return web.json_response({"ok": False, "error": "body is not JSON"}, status=400)
            if not isinstance(body, dict):
                return web.json_response(
                    {"ok": False, "error": "body must be an object"}, status=400
                )
            try:
                result = await handler(body)
            except ExchangeError as exc:
                return web.json_response(
                    {"ok": False, "error": exc.ret_msg, "retCode": exc.ret_code}, status=400
                )
            except (ValueError, KeyError, TypeError, ArithmeticError) as exc:
                return web.json_response({"ok": False, "error": f"bad request: {exc}"}, status=400)
            return web.json_response({"ok": True, "result": result})

        return route


def _account_keys(config: SimConfig) -> dict[str, tuple[str, str]]:
    """Account name -> (key, secret): the configured pair first, then the demo pairs."""
    keys = {account_name(0): (config.api_key, config.api_secret)}
    for index in range(1, config.accounts):
        keys[account_name(index)] = demo_credentials(index)
    return keys


def _new_conn_id(kind: ConnKind) -> str:
    if kind is ConnKind.PUBLIC:
        return str(uuid.uuid4())
    return f"{uuid.uuid4().hex[:20]}-{uuid.uuid4().hex[:4]}"


def _timestamp_error(ts_raw: str, now_ms: int, window_raw: str) -> ExchangeError:
    return ExchangeError(
        10002,
        "invalid request, please check your server timestamp or recv_window param. "
        f"req_timestamp[{ts_raw}],server_timestamp[{now_ms}],recv_window[{window_raw}]",
    )


def _parse_params(method: str, raw_query: str, raw_body: str) -> dict[str, Any]:
    if method == "GET":
        return dict(parse_qsl(raw_query, keep_blank_values=True))
    try:
        body = json.loads(raw_body) if raw_body else {}
    except ValueError:
        raise ExchangeError(10001, "params error: request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ExchangeError(10001, "params error: request body must be a JSON object")
    return body
