"""Typed errors of the REST transport: HTTP/network failures here; Bybit's retCode errors live in
`wire.retcodes` and are re-exported for the imports of this module."""

from __future__ import annotations

from bybit_hybrid.wire.errors import excerpt
from bybit_hybrid.wire.retcodes import (
    AUTH_CODES,
    INVALID_REQUEST,
    NOT_MODIFIED,
    RATE_LIMITED,
    SERVER_CODES,
    TIMESTAMP_OUT_OF_WINDOW,
    ApiServerError,
    AuthError,
    BybitApiError,
    BybitError,
    InvalidRequestError,
    NotModifiedError,
    RateLimitedError,
    TimestampError,
    WrongSideError,
    ZeroPositionError,
    api_error,
)


class TransportError(BybitError):
    """No usable Bybit answer: connection failure, timeout, or a body that is not an envelope.

    `reached_server` is False only when the request provably never left (connection refused),
    which is the one case where a non-idempotent call may be retried.
    """

    def __init__(
        self,
        endpoint: str,
        reason: str,
        *,
        status: int | None = None,
        reached_server: bool = True,
    ) -> None:
        self.endpoint = endpoint
        self.reason = reason
        self.status = status
        self.reached_server = reached_server
        super().__init__(f"{endpoint} {reason}")


class ServerError(TransportError):
    """HTTP 5xx from Bybit or a proxy in front of it."""

    def __init__(self, endpoint: str, status: int, body_text: str) -> None:
        super().__init__(endpoint, f"answered http {status}: {excerpt(body_text)!r}", status=status)


class MalformedResponseError(TransportError):
    """Bybit (or a proxy) answered, but not with a usable envelope or result; not retried."""


class PaginationError(BybitError):
    """A paginated endpoint handed back a cursor it had already given (it would loop forever)."""


__all__ = [
    "AUTH_CODES",
    "INVALID_REQUEST",
    "NOT_MODIFIED",
    "RATE_LIMITED",
    "SERVER_CODES",
    "TIMESTAMP_OUT_OF_WINDOW",
    "ApiServerError",
    "AuthError",
    "BybitApiError",
    "BybitError",
    "InvalidRequestError",
    "MalformedResponseError",
    "NotModifiedError",
    "PaginationError",
    "RateLimitedError",
    "ServerError",
    "TimestampError",
    "TransportError",
    "WrongSideError",
    "ZeroPositionError",
    "api_error",
]
