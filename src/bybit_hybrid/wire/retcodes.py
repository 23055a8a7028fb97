"""Bybit retCodes and the typed errors they map to (one place: `api_error`). Pure."""

from __future__ import annotations

from typing import Final

RATE_LIMITED: Final = 10006
TIMESTAMP_OUT_OF_WINDOW: Final = 10002
INVALID_REQUEST: Final = 10001
NOT_MODIFIED: Final = 34040
AUTH_CODES: Final = frozenset({10003, 10004, 10005, 10010})
# 10000 "server timeout" and 10016 "server error": the exchange failed, not the request.
SERVER_CODES: Final = frozenset({10000, 10016})
# The live 10001 text when a stop is sent for a flat position (BYBIT_V5.md §7.3, F19).
_ZERO_POSITION_TEXT: Final = "zero position"
# The live 10001 text for a stop on the wrong side of the trigger price (BYBIT_V5.md §7.3):
# "StopLoss:… set for Buy position should lower than base_price:…??LastPrice".
_WRONG_SIDE_TEXT: Final = "base_price"


class BybitError(Exception):
    """Base of every error the REST client raises (retCodes here; transport failures in
    `transport.errors`)."""


class BybitApiError(BybitError):
    """Bybit answered with `retCode != 0` (usually with HTTP 200)."""

    def __init__(self, ret_code: int, ret_msg: str, endpoint: str) -> None:
        self.ret_code = ret_code
        self.ret_msg = ret_msg
        self.endpoint = endpoint
        super().__init__(self._describe())

    def _describe(self) -> str:
        return f"{self.endpoint} failed with retCode {self.ret_code}: {self.ret_msg!r}"


class RateLimitedError(BybitApiError):
    """10006: the per-UID limit is spent until `reset_at_ms` (None when Bybit sent no header)."""

    def __init__(
        self, ret_code: int, ret_msg: str, endpoint: str, reset_at_ms: int | None = None
    ) -> None:
        self.reset_at_ms = reset_at_ms
        super().__init__(ret_code, ret_msg, endpoint)

    def _describe(self) -> str:
        reset = "unknown" if self.reset_at_ms is None else f"{self.reset_at_ms} ms"
        return f"{super()._describe()} (limit resets at {reset})"


class TimestampError(BybitApiError):
    """10002: the request timestamp fell outside Bybit's recv_window (clock drift)."""


class AuthError(BybitApiError):
    """10003 bad key, 10004 bad signature, 10005 missing permission, 10010 unbound IP."""


class NotModifiedError(BybitApiError):
    """34040: the stop is already at the requested value; a stop mover treats it as done."""


class ZeroPositionError(BybitApiError):
    """10001 "can not set tp/sl/ts for zero position": there is no open position to protect."""


class InvalidRequestError(BybitApiError):
    """Any other 10001: bad parameters, a stop on the wrong side of the price, idx/mode mismatch."""


class WrongSideError(InvalidRequestError):
    """10001 "... should lower/greater than base_price": the stop is on the wrong side of the
    trigger-type price, i.e. that price is already through it."""


class ApiServerError(BybitApiError):
    """10000/10016: the exchange failed internally; safe to retry for idempotent calls."""


def api_error(
    endpoint: str, ret_code: int, ret_msg: str, reset_at_ms: int | None = None
) -> BybitApiError:
    """The typed error for a non-zero retCode; 10001 is split by its message."""
    if ret_code == RATE_LIMITED:
        return RateLimitedError(ret_code, ret_msg, endpoint, reset_at_ms)
    error_type = _error_type(ret_code, ret_msg)
    return error_type(ret_code, ret_msg, endpoint)


def _error_type(ret_code: int, ret_msg: str) -> type[BybitApiError]:
    if ret_code == TIMESTAMP_OUT_OF_WINDOW:
        return TimestampError
    if ret_code in AUTH_CODES:
        return AuthError
    if ret_code == NOT_MODIFIED:
        return NotModifiedError
    if ret_code in SERVER_CODES:
        return ApiServerError
    if ret_code == INVALID_REQUEST:
        if _ZERO_POSITION_TEXT in ret_msg.lower():
            return ZeroPositionError
        if _WRONG_SIDE_TEXT in ret_msg.lower():
            return WrongSideError
        return InvalidRequestError
    return BybitApiError
