"""The simulator's REST side: Bybit's endpoints, signature and recv_window checks, rate limits.

A signed call acts as the account whose key signed it (`sim/accounts.py`): that account's
exchange answers, under that key's rate-limit buckets.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qsl

from aiohttp import web

from bybit_hybrid.sim.accounts import SimAccount
from bybit_hybrid.sim.config import DEFAULT_RECV_WINDOW_MS, POSITION_LIST_PATH
from bybit_hybrid.sim.exchange import ExchangeError
from bybit_hybrid.sim.faults import RestErrorMode
from bybit_hybrid.sim.frames import envelope
from bybit_hybrid.sim.ratelimit import LimitDecision, RollingLimiter
from bybit_hybrid.sim.trading_faults import ORDER_PATH, STOP_PATH
from bybit_hybrid.sim.trading_shell import serve_trading
from bybit_hybrid.wire.signing import rest_payload, verify

if TYPE_CHECKING:
    from bybit_hybrid.sim.server import SimServer

log = logging.getLogger(__name__)

_BAD_GATEWAY_HTML: Final = "<html><body><h1>502 Bad Gateway</h1></body></html>"

# (the calling account, params, now_ms, raw body) -> result object
RestCall = Callable[[SimAccount, Mapping[str, Any], int, str], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class _Endpoint:
    method: str
    signed: bool
    call: RestCall


class RestShell:
    """The REST endpoints of one SimServer."""

    def __init__(self, server: SimServer) -> None:
        self._server = server
        self._limiter = RollingLimiter(server.config.rate_limits_per_s)

    def endpoints(self) -> dict[str, _Endpoint]:
        return {
            "/v5/market/tickers": _Endpoint(
                "GET", False, lambda a, p, _t, _r: a.exchange.tickers(p)
            ),
            "/v5/market/instruments-info": _Endpoint(
                "GET", False, lambda a, p, _t, _r: a.exchange.instruments_info(p)
            ),
            POSITION_LIST_PATH: _Endpoint("GET", True, self._position_list),
            "/v5/position/trading-stop": _Endpoint(
                "POST", True, lambda a, p, t, r: a.exchange.trading_stop(p, t, r)
            ),
            "/v5/order/create": _Endpoint(
                "POST", True, lambda a, p, t, _r: a.exchange.place_order(p, t)
            ),
        }

    async def market_time(self, request: web.Request) -> web.Response:
        now_ns = time.time_ns()
        result = {"timeSecond": str(now_ns // 1_000_000_000), "timeNano": str(now_ns)}
        return envelope(0, "OK", result, now_ns // 1_000_000)

    def route(
        self, path: str, endpoint: _Endpoint
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def route(request: web.Request) -> web.Response:
            raw_query = request.raw_path.partition("?")[2]
            raw_body = (await request.read()).decode("utf-8", "replace")
            if path in (STOP_PATH, ORDER_PATH):
                return await serve_trading(
                    self._server,
                    request,
                    path,
                    raw_body,
                    lambda: self._serve_rest(request, path, endpoint, raw_query, raw_body),
                    exchange=self._caller(request).exchange,
                )
            response = self._serve_rest(request, path, endpoint, raw_query, raw_body)
            if path == POSITION_LIST_PATH:
                delay_s = self._server.failover_faults.reorder_delay_s()
                if delay_s:
                    await asyncio.sleep(delay_s)  # computed now, delivered later: reordered
            return response

        return route

    def _caller(self, request: web.Request) -> SimAccount:
        """The account the request's key names (the default for an unknown key, which the
        signature check then refuses)."""
        acct = self._server.accounts.by_key(request.headers.get("X-BAPI-API-KEY", ""))
        return acct or self._server.accounts.default

    def _position_list(
        self, acct: SimAccount, params: Mapping[str, str], now_ms: int, _raw: str
    ) -> dict[str, Any]:
        """`position/list`, from a lagging state while `failover_faults` says so."""
        exchange = acct.exchange
        lagged = self._server.failover_faults.lagged_positions(acct.name, now_ms)
        if lagged is None:
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
        now_ms = self._server.now_ms()
        injected = self._server.faults.state.take_rest_error(path, endpoint.signed)
        if injected is not None:
            return self._injected_rest_error(injected, request, path, now_ms)
        signed_text = raw_query if endpoint.method == "GET" else raw_body
        decision: LimitDecision | None = None
        acct = self._server.accounts.default  # public market data is the same for everyone
        try:
            if endpoint.signed:
                acct = self._check_signature(request, signed_text, now_ms)
                decision = self._limiter.hit(acct.api_key, path, now_ms)
                if decision is not None and not decision.allowed:
                    return envelope(10006, "Too many visits!", {}, now_ms, decision.headers())
            params = _parse_params(endpoint.method, raw_query, raw_body)
            result = endpoint.call(acct, params, now_ms, raw_body)
        except ExchangeError as exc:
            extra = decision.headers() if decision is not None else {}
            return envelope(exc.ret_code, exc.ret_msg, {}, now_ms, extra)
        except Exception:  # a sim bug still answers in Bybit's envelope, never a bare 500
            log.exception("sim: %s failed", path)
            return envelope(10016, "Internal System Error.", {}, now_ms)
        finally:
            self._server.flush_pushes()
        extra = decision.headers() if decision is not None else {}
        return envelope(0, "OK", result, now_ms, extra)

    def _check_signature(self, request: web.Request, signed_text: str, now_ms: int) -> SimAccount:
        """The account whose key signed the request; Bybit's errors otherwise."""
        headers = request.headers
        api_key = headers.get("X-BAPI-API-KEY", "")
        acct = self._server.accounts.by_key(api_key)
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
