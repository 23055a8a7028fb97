"""Serving trading calls under armed trading faults: failures, lost replies, delays, hand stops.

`TradingFaultsMixin` gives `SimServer.faults` the Python switches (each mirrored by a
`/sim/fault/...` route); `serve_trading` wraps the normal REST handling of trading-stop and
order/create. The answers (retMsg texts, rate-limit headers) are Bybit V5's own, as live
trading-stop and order/create replies carry them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

from aiohttp import web

from bybit_hybrid.sim.exchange import Exchange, ExchangeError
from bybit_hybrid.sim.frames import envelope
from bybit_hybrid.sim.history import EventKind
from bybit_hybrid.sim.numbers import parse_decimal, times_1e8
from bybit_hybrid.sim.positions import Side
from bybit_hybrid.sim.trading_faults import (
    ORDER_PATH,
    STOP_PATH,
    DelayRule,
    Failure,
    FailureRule,
    FaultSpec,
    HandStopRule,
    PartialRule,
    TradingFaultState,
    armed,
    trading_path,
)

if TYPE_CHECKING:
    from bybit_hybrid.sim.server import SimServer

# A request that is never answered is held this long at most (or until the server stops), then
# its connection is aborted: long past any sane client timeout.
MAX_HOLD_S: Final = 60.0
_TIMESTAMP_MSG: Final = (
    "invalid request, please check your server timestamp or recv_window param. "
    "req_timestamp[{ts}],server_timestamp[{now}],recv_window[{window}]"
)


class TradingFaultsMixin:
    """Trading-fault switches of `FaultController` (which provides `_server`)."""

    _server: SimServer

    @property
    def trading(self) -> TradingFaultState:
        return self._server.trading_faults

    def trading_armed(self) -> int:
        """How many trading-fault rules are still armed."""
        return self.trading.live_rules(time.monotonic())

    def trading_failure(
        self,
        path: str,
        mode: Failure | str,
        *,
        count: int = 0,
        seconds: float = 0.0,
        symbol: str | None = None,
        reset_ms: int = 1000,
    ) -> None:
        """The next `count` calls to `path` (trading-stop or order), and/or every call for
        `seconds`, fail with `mode` (10006, 10001_zero, 10001_side, 10002, 10016, 110017,
        timeout = no reply and not applied, lost_reply = applied but no reply)."""
        failure = mode if isinstance(mode, Failure) else Failure(mode)
        rule_armed = armed(count, seconds, self._symbol(symbol), time.monotonic())
        self.trading.arm_failure(trading_path(path), failure, rule_armed, reset_ms)

    def reply_delay(
        self,
        path: str,
        ms: int,
        *,
        count: int = 0,
        seconds: float = 0.0,
        symbol: str | None = None,
    ) -> None:
        """Calls to `path` are applied on arrival, but their reply leaves `ms` later."""
        if ms <= 0:
            raise ValueError("ms must be positive")
        rule_armed = armed(count, seconds, self._symbol(symbol), time.monotonic())
        self.trading.delays.insert(0, DelayRule(trading_path(path), int(ms), rule_armed))

    def partial_fill(
        self,
        fraction: Decimal | str,
        *,
        count: int = 0,
        seconds: float = 0.0,
        symbol: str | None = None,
    ) -> None:
        """Market orders fill only `fraction` of their qty (rounded down to qtyStep, at least
        one step); the rest is cancelled, as a thin book does to a derivatives market order."""
        value = fraction if isinstance(fraction, Decimal) else parse_decimal(fraction)
        if value is None or not 0 < value < 1:
            raise ValueError("fraction must be a decimal in (0, 1)")
        rule_armed = armed(count, seconds, self._symbol(symbol), time.monotonic())
        self.trading.partials.insert(0, PartialRule(value, rule_armed))

    def hand_stop(
        self, ticks: int, *, count: int = 0, seconds: float = 0.0, symbol: str | None = None
    ) -> None:
        """While one of our trading-stop replies is in flight, another client moves the stop
        `ticks` ticks (positive = tighter, towards the mark; negative = looser)."""
        if ticks == 0:
            raise ValueError("ticks must not be 0")
        rule_armed = armed(count, seconds, self._symbol(symbol), time.monotonic())
        self.trading.hand_stops.insert(0, HandStopRule(int(ticks), rule_armed))

    def arm_spec(self, spec: FaultSpec) -> None:
        """Arms one parsed `--trading-fault` (see `parse_fault_spec`)."""
        life: dict[str, Any] = {"count": spec.count, "seconds": spec.seconds, "symbol": spec.symbol}
        if spec.kind == "failure" and spec.path is not None:
            self.trading_failure(spec.path, spec.value, reset_ms=spec.reset_ms, **life)
        elif spec.kind == "reply_delay" and spec.path is not None:
            self.reply_delay(spec.path, int(spec.value), **life)
        elif spec.kind == "partial_fill":
            self.partial_fill(spec.value, **life)
        elif spec.kind == "hand_stop":
            self.hand_stop(int(spec.value), **life)

    def _symbol(self, symbol: str | None) -> str | None:
        if symbol is not None:
            self._server.exchange.instrument(symbol)
        return symbol


Serve = Callable[[], web.Response]


async def serve_trading(
    sim: SimServer,
    request: web.Request,
    path: str,
    raw_body: str,
    serve: Serve,
    *,
    exchange: Exchange,
) -> web.Response:
    """`serve()` (the normal handling) under whatever trading faults are armed for `path`;
    `exchange` is the calling account's (the faults themselves apply to every account)."""
    state = sim.trading_faults
    now_s = time.monotonic()
    params = _peek(raw_body)
    symbol = params.get("symbol") if isinstance(params.get("symbol"), str) else None
    rule = state.take_failure(path, symbol, now_s)
    if rule is not None and not rule.failure.applies_request:
        response = _injected(sim, exchange, request, path, params, rule=rule, raw_body=raw_body)
        if rule.failure.answers:
            return response
        return await _hold(sim, request)
    fraction = state.take_partial(symbol, now_s) if path == ORDER_PATH else None
    exchange.fill_fraction = fraction
    try:
        response = serve()
    finally:
        exchange.fill_fraction = None
    if rule is not None:  # lost_reply: applied, never answered
        return await _hold(sim, request)
    if path == STOP_PATH and _ok(response):
        ticks = state.take_hand_stop(symbol, now_s)
        if ticks is not None:
            _apply_hand_stop(sim, exchange, params, ticks)
    delay_ms = state.take_delay_ms(path, symbol, now_s)
    if delay_ms:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(sim.stopping.wait(), delay_ms / 1000)
    return response


def _peek(raw_body: str) -> dict[str, Any]:
    try:
        body = json.loads(raw_body) if raw_body else {}
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _ok(response: web.Response) -> bool:
    return response.headers.get("Ret_code") == "0"


async def _hold(sim: SimServer, request: web.Request) -> web.Response:
    """No reply: wait (until stop or MAX_HOLD_S), then abort the connection without one."""
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(sim.stopping.wait(), MAX_HOLD_S)
    if request.transport is not None:
        request.transport.abort()
    return web.Response(status=504, text="")


def _injected(
    sim: SimServer,
    exchange: Exchange,
    request: web.Request,
    path: str,
    params: dict[str, Any],
    *,
    rule: FailureRule,
    raw_body: str,
) -> web.Response:
    """Bybit's answer for the armed failure (the request is not applied), recorded in history
    for trading-stop like every other trading-stop request."""
    now_ms = sim.now_ms()
    error, headers = _failure_answer(sim, exchange, request, path, params, rule=rule, now_ms=now_ms)
    if path == STOP_PATH:
        idx = params.get("positionIdx")
        exchange.history.record(
            now_ms,
            EventKind.TRADING_STOP,
            str(params.get("symbol")),
            idx if isinstance(idx, int) and not isinstance(idx, bool) else None,
            received_ms=now_ms,
            body=dict(params),
            raw_body=raw_body,
            ret_code=None if error is None else error.ret_code,
            ret_msg=None if error is None else error.ret_msg,
            injected=rule.failure.value,
        )
    if error is None:
        return web.Response(status=504, text="")
    return envelope(error.ret_code, error.ret_msg, {}, now_ms, headers)


def _failure_answer(
    sim: SimServer,
    exchange: Exchange,
    request: web.Request,
    path: str,
    params: dict[str, Any],
    *,
    rule: FailureRule,
    now_ms: int,
) -> tuple[ExchangeError | None, dict[str, str]]:
    failure = rule.failure
    if failure is Failure.RATE_LIMIT:
        limit = sim.config.rate_limits_per_s.get(path, 10)
        reset = now_ms + rule.reset_ms
        headers = {
            "X-Bapi-Limit": str(limit),
            "X-Bapi-Limit-Status": "0",
            "X-Bapi-Limit-Reset-Timestamp": str(reset),
        }
        return ExchangeError(10006, "Too many visits!"), headers
    if failure is Failure.ZERO_POSITION:
        return ExchangeError(10001, "can not set tp/sl/ts for zero position"), {}
    if failure is Failure.WRONG_SIDE:
        return _wrong_side(exchange, params), {}
    if failure is Failure.TIMESTAMP:
        headers_in = request.headers
        msg = _TIMESTAMP_MSG.format(
            ts=headers_in.get("X-BAPI-TIMESTAMP", ""),
            now=now_ms,
            window=headers_in.get("X-BAPI-RECV-WINDOW", "5000"),
        )
        return ExchangeError(10002, msg), {}
    if failure is Failure.SERVER:
        return ExchangeError(10016, "Internal System Error."), {}
    if failure is Failure.REDUCE_ONLY_ZERO:
        msg = "current position is zero, cannot fix reduce-only order qty"
        return ExchangeError(110017, msg), {}
    return None, {}


def _wrong_side(exchange: Exchange, params: dict[str, Any]) -> ExchangeError:
    """Bybit's wrong-side text for the request's stop against the current trigger price (as if
    the price had moved through the stop just before the request arrived)."""
    symbol = params.get("symbol")
    inst = exchange.instruments.get(symbol) if isinstance(symbol, str) else None
    if inst is None:
        return ExchangeError(10001, "params error: symbol invalid")
    idx = params.get("positionIdx", 0)
    pos = exchange.positions.get((inst.symbol, idx if isinstance(idx, int) else 0))
    side = pos.side if pos is not None and pos.is_open else Side.BUY
    trigger = params.get("slTriggerBy") or (
        pos.sl_trigger_by.value if pos is not None else "LastPrice"
    )
    base = exchange.prices.mark(inst.symbol)
    stop = parse_decimal(params.get("stopLoss")) or base
    rel = "lower" if side is Side.BUY else "greater"
    return ExchangeError(
        10001,
        f"StopLoss:{times_1e8(stop)} set for {side.value} position should {rel} than "
        f"base_price:{times_1e8(base)}??{trigger}",
    )


def _apply_hand_stop(
    sim: SimServer, exchange: Exchange, params: dict[str, Any], ticks: int
) -> None:
    """Another client moves the stop just set by `ticks` ticks, never through the trigger
    price (Bybit would reject that); pushes like any change."""
    symbol, idx = params.get("symbol"), params.get("positionIdx", 0)
    if not isinstance(symbol, str) or not isinstance(idx, int):
        return
    pos = exchange.positions.get((symbol, idx))
    if pos is None or not pos.is_open or not pos.stop_loss:
        return
    tick = exchange.instruments[symbol].tick_size
    sign = pos.side.sign
    wanted = pos.stop_loss + sign * ticks * tick
    trigger = exchange.trigger_price(symbol, pos.sl_trigger_by)
    limit = trigger - sign * tick  # the last price on the protective side of the trigger
    if (wanted - limit) * sign > 0:
        wanted = limit
    if wanted <= 0 or wanted == pos.stop_loss or (wanted - pos.stop_loss) * sign * ticks < 0:
        return
    with contextlib.suppress(ExchangeError):
        exchange.change_position(symbol, idx, sim.now_ms(), stop_loss=wanted)
    sim.flush_pushes()
