"""The Bybit V5 REST client: signing over the exact bytes sent, retCode errors, retries, limits."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from types import TracebackType
from typing import Final, ParamSpec, TypeVar

import msgspec

from bybit_hybrid.protocol.domain import Instrument, PositionKey, PositionSnapshot, TickerUpdate
from bybit_hybrid.protocol.ratelimit import int_or_none
from bybit_hybrid.transport.errors import (
    BybitError,
    MalformedResponseError,
    PaginationError,
    RateLimitedError,
    ServerError,
    TimestampError,
    TransportError,
    api_error,
)
from bybit_hybrid.transport.http import AiohttpBackend, HttpBackend, HttpBackendError, HttpResponse
from bybit_hybrid.transport.proxy import Proxy
from bybit_hybrid.transport.ratelimit import (
    DEFAULT_LIMITS_PER_S,
    ORDER_CREATE,
    POSITION_LIST,
    TRADING_STOP,
    EndpointLimiter,
    RateLimitStatus,
    parse_limit_headers,
)
from bybit_hybrid.transport.rest_calls import (
    EndpointLatency,
    PositionPage,
    RestAnswer,
    RestCall,
    RestMetrics,
    converted,
    is_not_modified,
    retryable,
)
from bybit_hybrid.wire.convert import instrument_from_wire, position_from_rest, ticker_from_rest
from bybit_hybrid.wire.decode import decode_rest_envelope, decode_result
from bybit_hybrid.wire.errors import WireDecodeError, excerpt
from bybit_hybrid.wire.frames import json_body, query_string
from bybit_hybrid.wire.messages import (
    InstrumentsResult,
    OrderCreateRequest,
    OrderCreateResult,
    PositionListResult,
    RestEnvelope,
    ServerTimeResult,
    TickersResult,
    TradingStopRequest,
)
from bybit_hybrid.wire.paths import INSTRUMENTS, MARKET_TIME, TICKERS
from bybit_hybrid.wire.signing import DEFAULT_RECV_WINDOW_MS, Credentials, mask

__all__ = [  # PositionPage, EndpointLatency, RestMetrics live in `transport.rest_calls`
    "BybitRestClient",
    "EndpointLatency",
    "PositionPage",
    "RestMetrics",
    "is_not_modified",
]

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")
Args = ParamSpec("Args")
Paged = TypeVar("Paged", PositionListResult, InstrumentsResult)
CATEGORY: Final = "linear"
POSITION_PAGE_LIMIT: Final = 200
INSTRUMENT_PAGE_LIMIT: Final = 1000
# A guard against a server that never ends pagination with fresh cursors.
MAX_PAGES: Final = 500
# pybit's wait when a 10006 comes without X-Bapi-Limit-Reset-Timestamp (BYBIT_V5.md §7.5).
DEFAULT_RATE_LIMIT_WAIT_S: Final = 2.0

_HEADER_LIMIT: Final = "X-Bapi-Limit"
_HEADER_REMAINING: Final = "X-Bapi-Limit-Status"
_HEADER_RESET: Final = "X-Bapi-Limit-Reset-Timestamp"


class BybitRestClient:
    """Async client for the Bybit V5 REST calls bybit-hybrid needs; no business decisions.

    Time and waiting are injected (`clock` in seconds, `sleep`) so retries and rate-limit
    waits are testable without real sleeping. `max_retries` counts retries after the first try.
    """

    def __init__(
        self,
        base_url: str,
        credentials: Credentials | None,
        *,
        backend: HttpBackend | None = None,
        recv_window_ms: int = DEFAULT_RECV_WINDOW_MS,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        max_retries: int = 3,
        backoff_base_s: float = 0.25,
        backoff_max_s: float = 4.0,
        max_rate_limit_wait_s: float = 5.0,
        limits_per_s: Mapping[str, float] | None = DEFAULT_LIMITS_PER_S,
        metrics: RestMetrics | None = None,
        proxy: Proxy | None = None,
    ) -> None:
        """`proxy` routes the client's own backend (ignored when a backend is lent)."""
        self._base_url = base_url.rstrip("/")
        self._credentials = credentials
        # A backend the client creates is closed by it; a lent one belongs to the caller.
        self._owned_backend: AiohttpBackend | None = None
        if backend is None:
            backend = self._owned_backend = AiohttpBackend(proxy=proxy)
        self._backend = backend
        self._recv_window_ms = recv_window_ms
        self._clock = clock
        self._sleep = sleep
        self._max_retries = max_retries
        self._backoff_base_s = backoff_base_s
        self._backoff_max_s = backoff_max_s
        self._max_rate_limit_wait_s = max_rate_limit_wait_s
        self._limiter = EndpointLimiter(limits_per_s or {})
        self._offset_ms = 0
        self._rate_limits: dict[str, RateLimitStatus] = {}
        self.metrics = metrics if metrics is not None else RestMetrics()

    def __repr__(self) -> str:
        return f"BybitRestClient(base_url={self._base_url!r}, credentials={self._credentials!r})"

    async def __aenter__(self) -> BybitRestClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Closes the HTTP session if this client created it; a lent backend stays open."""
        if self._owned_backend is not None:
            await self._owned_backend.close()

    # --- clock -----------------------------------------------------------------------------

    @property
    def clock_offset_ms(self) -> int:
        """Server time minus local time, as measured by the last `sync_clock()`."""
        return self._offset_ms

    def now_ms(self) -> int:
        """The estimated exchange time: local clock plus the measured offset."""
        return int(self._clock() * 1000) + self._offset_ms

    async def server_time_ms(self) -> int:
        """Bybit's clock, from `GET /v5/market/time` (ns precision when given)."""
        answer = await self._call(self._get_request(MARKET_TIME, {}, signed=False))
        return self._server_ms(answer)

    async def sync_clock(self) -> int:
        """Measures the offset against the midpoint of one exchange and uses it from now on."""
        answer = await self._call(self._get_request(MARKET_TIME, {}, signed=False))
        midpoint_ms = (answer.sent_at_s + answer.received_at_s) * 500
        self._offset_ms = round(self._server_ms(answer) - midpoint_ms)
        log.debug("clock offset to bybit is %d ms", self._offset_ms)
        return self._offset_ms

    def _server_ms(self, answer: RestAnswer) -> int:
        result = self._result(MARKET_TIME, answer.envelope, ServerTimeResult)
        try:
            return int(result.timeNano) // 1_000_000
        except ValueError:
            if answer.envelope.time is None:
                raise MalformedResponseError(
                    MARKET_TIME, "answered without a usable time"
                ) from None
            return answer.envelope.time

    # --- rate limits -----------------------------------------------------------------------

    @property
    def rate_limits(self) -> Mapping[str, RateLimitStatus]:
        """The last `X-Bapi-Limit*` headers seen, per endpoint path."""
        return dict(self._rate_limits)

    # --- endpoints -------------------------------------------------------------------------

    async def get_positions(
        self, settle_coins: Sequence[str] = ("USDT", "USDC"), *, symbol: str | None = None
    ) -> PositionPage:
        """Every linear position row, paging each settle coin (or the one symbol) to the end.

        Only open positions come back per settle coin; with `symbol` Bybit also returns flat
        rows, which are kept. A row repeated on a later page (it moved while paging) replaces
        the earlier one.
        """
        if symbol is not None:
            # One symbol has at most two rows (hedge mode), so no page size is asked for.
            queries: list[dict[str, str | int]] = [{"category": CATEGORY, "symbol": symbol}]
        else:
            queries = [
                {"category": CATEGORY, "settleCoin": coin, "limit": POSITION_PAGE_LIMIT}
                for coin in settle_coins
            ]
        rows: dict[PositionKey, PositionSnapshot] = {}
        page_times_ms: list[int] = []
        for params in queries:
            async for page, time_ms in self._pages(POSITION_LIST, params, PositionListResult):
                page_times_ms.append(time_ms)
                for row in page.items:
                    snapshot = converted(POSITION_LIST, position_from_rest, row, time_ms)
                    rows[snapshot.key] = snapshot
        return PositionPage(list(rows.values()), min(page_times_ms, default=None))

    async def get_tickers(self, symbol: str | None = None) -> list[TickerUpdate]:
        """Linear tickers (public); each row acts as a snapshot for the mark-price cache."""
        params: dict[str, str | int] = {"category": CATEGORY}
        if symbol is not None:
            params["symbol"] = symbol
        result, time_ms = await self._get(TICKERS, params, TickersResult, signed=False)
        return [converted(TICKERS, ticker_from_rest, row, time_ms) for row in result.items]

    async def get_instruments(self) -> dict[str, Instrument]:
        """Trading linear instruments by symbol; linear has more than one 500-row page."""
        params: dict[str, str | int] = {"category": CATEGORY, "limit": INSTRUMENT_PAGE_LIMIT}
        instruments: dict[str, Instrument] = {}
        async for page, _ in self._pages(INSTRUMENTS, params, InstrumentsResult, signed=False):
            for info in page.items:
                instruments[info.symbol] = converted(INSTRUMENTS, instrument_from_wire, info)
        return instruments

    async def set_trading_stop(self, request: TradingStopRequest, *, retry: bool = True) -> None:
        """Sets TP/SL; raises NotModifiedError (34040) when the stop is already there.

        `retry=False` makes one attempt: for callers that re-decide between attempts.
        """
        # The result is `{}` and carries nothing, so it is not decoded.
        body = json_body(request)
        await self._call(RestCall("POST", TRADING_STOP, body, True, idempotent=True, retry=retry))

    async def apply_trading_stop(self, request: TradingStopRequest, *, retry: bool = True) -> bool:
        """`set_trading_stop` with 34040 as success: True if changed, False if already set."""
        try:
            await self.set_trading_stop(request, retry=retry)
        except BybitError as exc:
            if is_not_modified(exc):
                return False
            raise
        return True

    async def create_order(self, request: OrderCreateRequest) -> str:
        """Places an order and returns its orderId; never retried once it may have arrived."""
        result = await self._post(ORDER_CREATE, request, OrderCreateResult, idempotent=False)
        return result.orderId

    # --- request building ------------------------------------------------------------------

    def _get_request(
        self, endpoint: str, params: Mapping[str, str | int], *, signed: bool
    ) -> RestCall:
        return RestCall("GET", endpoint, query_string(params), signed, idempotent=True)

    async def _get(
        self,
        endpoint: str,
        params: Mapping[str, str | int],
        result_type: type[T],
        *,
        signed: bool = True,
    ) -> tuple[T, int]:
        answer = await self._call(self._get_request(endpoint, params, signed=signed))
        time_ms = answer.envelope.time if answer.envelope.time is not None else self.now_ms()
        return self._result(endpoint, answer.envelope, result_type), time_ms

    async def _post(
        self, endpoint: str, body: msgspec.Struct, result_type: type[T], *, idempotent: bool
    ) -> T:
        request = RestCall("POST", endpoint, json_body(body), signed=True, idempotent=idempotent)
        answer = await self._call(request)
        return self._result(endpoint, answer.envelope, result_type)

    async def _pages(
        self,
        endpoint: str,
        params: Mapping[str, str | int],
        result_type: type[Paged],
        *,
        signed: bool = True,
    ) -> AsyncIterator[tuple[Paged, int]]:
        """Pages until `nextPageCursor` is ""; cursors go back verbatim (they may hold `%`)."""
        seen: set[str] = set()
        cursor = ""
        for _ in range(MAX_PAGES):
            query = {**params, "cursor": cursor} if cursor else params
            page, time_ms = await self._get(endpoint, query, result_type, signed=signed)
            yield page, time_ms
            cursor = page.nextPageCursor
            if not cursor:
                return
            if cursor in seen:
                raise PaginationError(f"{endpoint} repeated cursor {cursor!r}; stopped paging")
            seen.add(cursor)
        raise PaginationError(f"{endpoint} returned more than {MAX_PAGES} pages; stopped paging")

    def _url(self, request: RestCall) -> str:
        url = self._base_url + request.endpoint
        if request.method == "GET" and request.payload:
            url += "?" + request.payload
        return url

    def _headers(self, request: RestCall) -> tuple[dict[str, str], str | None]:
        """Headers for one attempt, and the signature (so error text can be scrubbed of it)."""
        headers = {"Content-Type": "application/json"} if request.method == "POST" else {}
        if not request.signed:
            return headers, None
        if self._credentials is None:
            raise BybitError(f"{request.endpoint} needs api credentials; the client has none")
        timestamp_ms = self.now_ms()
        signature = self._credentials.rest_signature(
            timestamp_ms, self._recv_window_ms, request.payload
        )
        headers |= {
            "X-BAPI-API-KEY": self._credentials.api_key,
            "X-BAPI-TIMESTAMP": str(timestamp_ms),
            "X-BAPI-SIGN": signature,
            "X-BAPI-RECV-WINDOW": str(self._recv_window_ms),
            "X-BAPI-SIGN-TYPE": "2",
        }
        return headers, signature

    # --- sending, retrying -----------------------------------------------------------------

    async def _call(self, request: RestCall) -> RestAnswer:
        """One logical call: resync once on 10002, retry what is safe to retry."""
        resynced = False
        retries = 0
        while True:
            try:
                return await self._attempt(request)
            except TimestampError:
                if resynced or not request.signed:
                    raise
                resynced = True
                log.warning("%s hit 10002 (clock drift); resyncing the clock", request.endpoint)
                await self.sync_clock()
            except BybitError as exc:
                delay_s = self._retry_delay_s(request, exc, retries)
                if delay_s is None:
                    raise
                retries += 1
                self.metrics.retries[request.endpoint] += 1
                # The caller reports a call that fails for good (summarised, issue 18); each
                # transient retry of it is detail.
                log.debug(
                    "%s retry %d/%d in %.2f s after: %s",
                    request.endpoint,
                    retries,
                    self._max_retries,
                    delay_s,
                    exc,
                )
                await self._sleep(delay_s)

    def _retry_delay_s(self, request: RestCall, exc: BybitError, retries: int) -> float | None:
        """Seconds to wait before the next try, or None to give up."""
        if not request.retry or retries >= self._max_retries:
            return None
        if isinstance(exc, RateLimitedError):
            return self._rate_limit_wait_s(exc)
        if not retryable(request, exc):
            return None
        return float(min(self._backoff_max_s, self._backoff_base_s * 2**retries))

    def _rate_limit_wait_s(self, exc: RateLimitedError) -> float:
        if exc.reset_at_ms is None:
            return min(DEFAULT_RATE_LIMIT_WAIT_S, self._max_rate_limit_wait_s)
        wait_s = (exc.reset_at_ms - self.now_ms()) / 1000
        return min(max(wait_s, 0.0), self._max_rate_limit_wait_s)

    async def _attempt(self, request: RestCall) -> RestAnswer:
        wait_s = self._limiter.reserve(request.endpoint, self._clock())
        if wait_s > 0:
            await self._sleep(wait_s)
        headers, signature = self._headers(request)
        body = request.payload.encode() if request.method == "POST" else None
        sent_at_s = self._clock()
        response = await self._send(request, headers, body, signature)
        received_at_s = self._clock()
        self.metrics.record_latency(request.endpoint, (received_at_s - sent_at_s) * 1000)
        self._track_limits(request.endpoint, response)
        envelope = self._check(request.endpoint, response, signature)
        return RestAnswer(envelope, sent_at_s, received_at_s)

    async def _send(
        self, request: RestCall, headers: dict[str, str], body: bytes | None, signature: str | None
    ) -> HttpResponse:
        try:
            return await self._backend.request(request.method, self._url(request), headers, body)
        except HttpBackendError as exc:
            reason, reached = exc.reason, exc.reached_server
        except ConnectionRefusedError:
            reason, reached = "could not connect (connection refused)", False
        except (OSError, TimeoutError) as exc:
            reason, reached = f"connection failed ({type(exc).__name__})", True
        self.metrics.transport_errors[request.endpoint] += 1
        raise TransportError(
            request.endpoint, self._redact(reason, signature), reached_server=reached
        )

    def _check(self, endpoint: str, response: HttpResponse, signature: str | None) -> RestEnvelope:
        """The envelope of a successful answer; any failure becomes a typed error."""
        if response.status >= 500:
            self.metrics.transport_errors[endpoint] += 1
            raise ServerError(endpoint, response.status, self._body_text(response, signature))
        try:
            envelope = decode_rest_envelope(response.body)
        except WireDecodeError:
            self.metrics.transport_errors[endpoint] += 1
            shown = excerpt(self._body_text(response, signature))
            raise MalformedResponseError(
                endpoint,
                f"answered http {response.status} with a body that is not a bybit envelope: "
                f"{shown!r}",
                status=response.status,
            ) from None
        self.metrics.responses[(endpoint, envelope.retCode)] += 1
        if envelope.retCode != 0:
            reset_at_ms = int_or_none(response.header(_HEADER_RESET))
            message = self._redact(envelope.retMsg, signature)
            raise api_error(endpoint, envelope.retCode, message, reset_at_ms)
        return envelope

    def _track_limits(self, endpoint: str, response: HttpResponse) -> None:
        status = parse_limit_headers(
            response.header(_HEADER_LIMIT),
            response.header(_HEADER_REMAINING),
            response.header(_HEADER_RESET),
            self.now_ms(),
        )
        if status is not None:
            self._rate_limits[endpoint] = status

    # --- decoding --------------------------------------------------------------------------

    def _result(self, endpoint: str, envelope: RestEnvelope, result_type: type[T]) -> T:
        try:
            return decode_result(envelope, result_type)
        except WireDecodeError as exc:
            raise MalformedResponseError(
                endpoint, f"answered an unexpected result: {exc}"
            ) from None

    # --- secrets ---------------------------------------------------------------------------

    def _body_text(self, response: HttpResponse, signature: str | None) -> str:
        return self._redact(response.body.decode("utf-8", "replace"), signature)

    def _redact(self, text: str, signature: str | None) -> str:
        """Masks the key to 4 chars and removes the secret and signature from exchange text."""
        if self._credentials is None:
            return text
        # Reading the private field is deliberate: scrubbing is the one use of the secret here.
        secret = self._credentials._secret.decode()
        for hidden in (secret, signature):
            if hidden:
                text = text.replace(hidden, "***")
        return text.replace(self._credentials.api_key, mask(self._credentials.api_key))
