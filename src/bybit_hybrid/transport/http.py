"""The REST client's injected HTTP backend: the protocol, an aiohttp one, a scripted mock."""

from __future__ import annotations

import asyncio
import functools
import ssl
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final, Protocol
from urllib.parse import urlsplit

import aiohttp
import msgspec
import yarl

from bybit_hybrid.transport.proxy import Proxy, session_for

DEFAULT_TOTAL_TIMEOUT_S: Final = 10.0
PROXY_AUTH_REQUIRED: Final = 407
DEFAULT_CONNECT_TIMEOUT_S: Final = 5.0


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """One HTTP answer: status, headers (looked up case-insensitively) and the raw body."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        for key, value in self.headers.items():
            if key.lower() == wanted:
                return value
        return None


class HttpBackendError(Exception):
    """The request failed below HTTP (refused, reset, TLS, timeout).

    `reached_server` is False only when the request provably never left this host
    (connection refused, DNS failure, TLS handshake failure): only then may a
    non-idempotent call be retried.
    """

    def __init__(self, reason: str, *, reached_server: bool) -> None:
        self.reason = reason
        self.reached_server = reached_server
        super().__init__(reason)


class HttpBackend(Protocol):
    """What the REST client needs from the network: send exactly these bytes, return the answer."""

    async def request(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None
    ) -> HttpResponse: ...


@functools.cache
def verified_tls_context() -> ssl.SSLContext:
    """The default CA-verifying context; certificates and host names are always checked.

    Built once per process and shared (nothing here mutates it): loading the system CA store
    costs about 0.4 s of CPU, which every REST client and WebSocket backend paid at start.
    """
    return ssl.create_default_context()


class AiohttpBackend:
    """`HttpBackend` over aiohttp; owns its session unless one is lent to it.

    The URL is passed with `encoded=True` so the signed query (cursors with `%`) is sent
    byte for byte, and every request carries a verifying TLS context, because aiohttp would
    otherwise inherit a lent session's `ssl=False`.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession | None = None,
        *,
        total_timeout_s: float = DEFAULT_TOTAL_TIMEOUT_S,
        connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
        tls_context: ssl.SSLContext | None = None,
        proxy: Proxy | None = None,
    ) -> None:
        self._session = session
        self._owns_session = session is None
        self._proxy = proxy
        self._proxy_kwargs = {} if proxy is None else proxy.request_kwargs()
        self._timeout = aiohttp.ClientTimeout(total=total_timeout_s, connect=connect_timeout_s)
        self._tls = tls_context if tls_context is not None else verified_tls_context()
        if self._tls.verify_mode != ssl.CERT_REQUIRED or not self._tls.check_hostname:
            raise ValueError("tls_context must verify certificates and host names")

    def _session_or_new(self) -> aiohttp.ClientSession:
        if self._session is None or (self._owns_session and self._session.closed):
            self._session = session_for(self._proxy)
        return self._session

    async def request(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None
    ) -> HttpResponse:
        session = self._session_or_new()
        try:
            async with session.request(
                method,
                yarl.URL(url, encoded=True),
                headers=self._headers(url, headers),
                data=body,
                timeout=self._timeout,
                ssl=self._tls,
                **self._proxy_kwargs,
            ) as response:
                if response.status == PROXY_AUTH_REQUIRED and self._proxy is not None:
                    raise HttpBackendError(
                        f"the proxy {self._proxy} answered http 407 (credentials refused)",
                        reached_server=False,
                    )
                payload = await response.read()
                return HttpResponse(response.status, dict(response.headers), payload)
        except aiohttp.ClientProxyConnectionError as exc:
            raise HttpBackendError(
                f"could not connect to the proxy {self._proxy}", reached_server=False
            ) from exc
        except aiohttp.ClientHttpProxyError as exc:
            raise HttpBackendError(
                f"the proxy {self._proxy} answered http {exc.status}", reached_server=False
            ) from exc
        except aiohttp.ClientConnectorError as exc:
            # Raised before any byte of the request was written: refused, DNS, TLS handshake.
            raise HttpBackendError(f"could not connect ({exc})", reached_server=False) from exc
        except aiohttp.ConnectionTimeoutError as exc:
            raise HttpBackendError("timed out connecting", reached_server=False) from exc
        except TimeoutError as exc:
            raise HttpBackendError("timed out", reached_server=True) from exc
        except aiohttp.ClientError as exc:
            raise HttpBackendError(f"connection failed ({exc!r})", reached_server=True) from exc

    def _headers(self, url: str, headers: Mapping[str, str]) -> dict[str, str]:
        if self._proxy is None:
            return dict(headers)
        return {**headers, **self._proxy.forward_headers(url)}

    async def close(self) -> None:
        """Closes the session only if this backend created it."""
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    aclose = close  # the name the WebSocket backends use


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """A request as the mock backend received it, bytes untouched."""

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes | None

    @property
    def path(self) -> str:
        return urlsplit(self.url).path

    @property
    def query(self) -> str:
        """The raw (still percent-encoded) query string exactly as sent."""
        return urlsplit(self.url).query

    @property
    def body_text(self) -> str:
        return (self.body or b"").decode()

    def header(self, name: str) -> str | None:
        return HttpResponse(0, self.headers, b"").header(name)


Scripted = HttpResponse | BaseException
Handler = Callable[[RecordedRequest], HttpResponse]


@dataclass
class MockBackend:
    """A scripted `HttpBackend` for tests: answers from per-path queues, then a shared queue,
    then `handler`; records every request. A scripted exception is raised instead of answering.
    """

    handler: Handler | None = None
    requests: list[RecordedRequest] = field(default_factory=list)
    _by_path: dict[str, deque[Scripted]] = field(default_factory=dict)
    _shared: deque[Scripted] = field(default_factory=deque)

    def enqueue(self, *answers: Scripted, path: str | None = None) -> MockBackend:
        queue = self._shared if path is None else self._by_path.setdefault(path, deque())
        queue.extend(answers)
        return self

    def pending(self) -> int:
        """How many scripted answers are still unused."""
        return len(self._shared) + sum(len(queue) for queue in self._by_path.values())

    async def request(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None
    ) -> HttpResponse:
        recorded = RecordedRequest(method, url, dict(headers), body)
        self.requests.append(recorded)
        await asyncio.sleep(0)  # a real backend always yields; keep the same interleavings
        answer = self._next(recorded)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def _next(self, recorded: RecordedRequest) -> Scripted:
        queue = self._by_path.get(recorded.path)
        if queue:
            return queue.popleft()
        if self._shared:
            return self._shared.popleft()
        if self.handler is not None:
            return self.handler(recorded)
        raise AssertionError(f"mock backend has no answer for {recorded.method} {recorded.url}")


def json_response(
    payload: object, *, status: int = 200, headers: Mapping[str, str] | None = None
) -> HttpResponse:
    """An `HttpResponse` carrying `payload` as JSON (a str or bytes payload is sent as is)."""
    if isinstance(payload, bytes):
        body = payload
    elif isinstance(payload, str):
        body = payload.encode()
    else:
        body = msgspec.json.encode(payload)
    return HttpResponse(status, {"Content-Type": "application/json", **(headers or {})}, body)


def envelope_response(
    result: object = None,
    *,
    ret_code: int = 0,
    ret_msg: str = "OK",
    time_ms: int = 1_700_000_000_000,
    headers: Mapping[str, str] | None = None,
) -> HttpResponse:
    """A Bybit envelope `{"retCode","retMsg","result","retExtInfo","time"}` with HTTP 200."""
    envelope = {
        "retCode": ret_code,
        "retMsg": ret_msg,
        "result": {} if result is None else result,
        "retExtInfo": {},
        "time": time_ms,
    }
    return json_response(envelope, headers=headers)
