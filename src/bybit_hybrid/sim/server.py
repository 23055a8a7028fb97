"""aiohttp shell of the simulator: Bybit V5 WebSockets and REST on one port, plus /sim/ control."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal
from typing import Any

from aiohttp import web

from bybit_hybrid.sim import frames
from bybit_hybrid.sim.accounts import (
    Accounts,
    account_name,
    demo_credentials,
)
from bybit_hybrid.sim.config import (
    DEMO_API_KEY,
    DEMO_API_SECRET,
    PRIVATE_PATH,
    PUBLIC_PATH,
    SimConfig,
    parse_max_active_time,
)
from bybit_hybrid.sim.connections import SimConnection
from bybit_hybrid.sim.control import ControlPlane, control_routes
from bybit_hybrid.sim.control_api import AccountControl, MarketControl
from bybit_hybrid.sim.exchange import Exchange, ExchangeError
from bybit_hybrid.sim.failover_faults import FailoverFaults
from bybit_hybrid.sim.fault_control import FaultController, coerce_target
from bybit_hybrid.sim.faults import Target
from bybit_hybrid.sim.history import CloseReason
from bybit_hybrid.sim.positions import Position, PositionMode, Side
from bybit_hybrid.sim.rest_shell import RestShell
from bybit_hybrid.sim.scenarios import run_scenario
from bybit_hybrid.sim.trading_faults import (
    TradingFaultState,
    parse_fault_spec,
)
from bybit_hybrid.sim.ws_shell import WsShell

# Re-exported: the simulator's configuration has always been importable from here.
__all__ = [
    "DEMO_API_KEY",
    "DEMO_API_SECRET",
    "SimConfig",
    "SimServer",
    "parse_max_active_time",
]

log = logging.getLogger(__name__)


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
        self.subs: dict[str, set[SimConnection]] = {}
        self.ws = WsShell(self)
        self.rest = RestShell(self)
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
        app.router.add_get(PUBLIC_PATH, self.ws.public_ws)
        app.router.add_get(PRIVATE_PATH, self.ws.private_ws)
        app.router.add_get("/v5/market/time", self.rest.market_time)
        for path, endpoint in self.rest.endpoints().items():
            app.router.add_route(endpoint.method, path, self.rest.route(path, endpoint))
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
            self.failover_faults.record(self._positions(), self.now_ms())
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
        subs_by_topic = self.subs
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

    def snapshot_frame(self, symbol: str, now_ms: int) -> str:
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
                subs = [c for c in self.subs.get(topic, ()) if c.account == acct.name]
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
        self.failover_faults.set_lag(int(lag_ms), self._positions(), self.now_ms())

    def _positions(self) -> dict[str, dict[tuple[str, int], Position]]:
        return {acct.name: acct.exchange.positions for acct in self.accounts}

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
