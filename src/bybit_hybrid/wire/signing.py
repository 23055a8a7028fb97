"""HMAC-SHA256 signatures for Bybit V5: private WebSocket auth and signed REST requests."""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

DEFAULT_RECV_WINDOW_MS: Final = 5000


class Credentials:
    """An API key and secret; the secret never appears in repr, str or errors."""

    __slots__ = ("_secret", "api_key")

    def __init__(self, api_key: str, api_secret: str) -> None:
        if not api_key or not api_secret:
            raise ValueError("api key and api secret must both be non-empty")
        self.api_key = api_key
        self._secret = api_secret.encode()

    def __repr__(self) -> str:
        return f"Credentials(api_key={mask(self.api_key)!r}, api_secret='***')"

    __str__ = __repr__

    def sign(self, payload: str) -> str:
        """Lowercase hex HMAC-SHA256 of `payload` under the secret."""
        return hmac.new(self._secret, payload.encode(), hashlib.sha256).hexdigest()

    def ws_auth_signature(self, expires_ms: int) -> str:
        return self.sign(ws_auth_payload(expires_ms))

    def rest_signature(self, timestamp_ms: int, recv_window_ms: int, query_or_body: str) -> str:
        return self.sign(rest_payload(self.api_key, timestamp_ms, recv_window_ms, query_or_body))


def mask(value: str) -> str:
    """Shows only enough of an identifier to tell keys apart: `abcd…` ."""
    return value[:4] + "…" if len(value) > 4 else "***"


def ws_auth_payload(expires_ms: int) -> str:
    """The string Bybit signs for private-stream auth: `GET/realtime{expires}`."""
    return f"GET/realtime{expires_ms}"


def rest_payload(api_key: str, timestamp_ms: int, recv_window_ms: int, query_or_body: str) -> str:
    """The string Bybit signs for REST: timestamp + key + recv_window + (query string | body).

    It must be exactly the bytes sent: the raw query string for GET, the raw JSON body for POST.
    """
    return f"{timestamp_ms}{api_key}{recv_window_ms}{query_or_body}"


def verify(secret: str, payload: str, signature: str) -> bool:
    """Constant-time check of a hex signature (used by the simulator)."""
    expected = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature.lower())
