"""The REST client's values: one call, its answer, a listing's pages, the metrics it keeps, and
which failures are safe to repeat (`transport.rest.BybitRestClient` uses them)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ParamSpec, TypeVar

from bybit_hybrid.protocol.domain import PositionSnapshot
from bybit_hybrid.transport.errors import (
    ApiServerError,
    BybitError,
    MalformedResponseError,
    NotModifiedError,
    TransportError,
)
from bybit_hybrid.wire.errors import WireDecodeError
from bybit_hybrid.wire.messages import RestEnvelope

R = TypeVar("R")
Args = ParamSpec("Args")


@dataclass(frozen=True, slots=True)
class PositionPage:
    """Every row `position/list` returned; `response_time_ms` is the oldest page's server time."""

    positions: list[PositionSnapshot]
    response_time_ms: int | None


@dataclass(slots=True)
class EndpointLatency:
    count: int = 0
    total_ms: float = 0.0
    max_ms: float = 0.0

    def add(self, latency_ms: float) -> None:
        self.count += 1
        self.total_ms += latency_ms
        self.max_ms = max(self.max_ms, latency_ms)


@dataclass(slots=True)
class RestMetrics:
    """Counters a metrics exporter can read: answers per (endpoint, retCode), failures, latency."""

    responses: Counter[tuple[str, int]] = field(default_factory=Counter)
    transport_errors: Counter[str] = field(default_factory=Counter)
    retries: Counter[str] = field(default_factory=Counter)
    latency: dict[str, EndpointLatency] = field(default_factory=dict)

    def record_latency(self, endpoint: str, latency_ms: float) -> None:
        self.latency.setdefault(endpoint, EndpointLatency()).add(latency_ms)


@dataclass(frozen=True, slots=True)
class RestCall:
    """One logical call; `payload` is the exact query string (GET) or body (POST) that is signed."""

    method: str
    endpoint: str
    payload: str
    signed: bool
    idempotent: bool
    retry: bool = True  # False: one attempt (a 10002 resync aside); the caller owns retries


@dataclass(frozen=True, slots=True)
class RestAnswer:
    envelope: RestEnvelope
    sent_at_s: float
    received_at_s: float


def retryable(request: RestCall, exc: BybitError) -> bool:
    """Safe-to-repeat failures: never-sent requests always; server trouble for idempotent calls."""
    if isinstance(exc, TransportError) and not exc.reached_server:
        return True
    if not request.idempotent:
        return False
    if isinstance(exc, ApiServerError):
        return True
    # 5xx and network failures pass; a malformed body will not improve on retry.
    return isinstance(exc, TransportError) and not isinstance(exc, MalformedResponseError)


def converted(
    endpoint: str, convert: Callable[Args, R], *args: Args.args, **kwargs: Args.kwargs
) -> R:
    """Runs one wire -> domain conversion, naming the endpoint if the row is unusable."""
    try:
        return convert(*args, **kwargs)
    except WireDecodeError as exc:
        raise MalformedResponseError(
            endpoint, f"answered a row that does not convert: {exc}"
        ) from None


def is_not_modified(exc: BaseException) -> bool:
    """True for 34040: the requested TP/SL is already in place, which is success for a mover."""
    return isinstance(exc, NotModifiedError)
