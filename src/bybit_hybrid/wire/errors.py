"""The wire layer's one error type: a frame or body that is not what Bybit documents."""

from __future__ import annotations

EXCERPT_CHARS = 160


def excerpt(payload: bytes | str | memoryview, limit: int = EXCERPT_CHARS) -> str:
    """A short printable excerpt of a payload for error messages and logs."""
    text = payload if isinstance(payload, str) else bytes(payload).decode("utf-8", "replace")
    text = text.replace("\n", " ")
    return text if len(text) <= limit else text[:limit] + "…"


class WireDecodeError(ValueError):
    """A payload that is not valid JSON or does not match Bybit's schema.

    `path` names the offending place (`$.data[0].size`) when known; `excerpt` shows the input.
    """

    def __init__(
        self, reason: str, payload: bytes | str | memoryview = b"", path: str | None = None
    ) -> None:
        self.reason = reason
        self.path = path
        self.excerpt = excerpt(payload) if payload else ""
        where = f" at {path}" if path else ""
        shown = f": {self.excerpt!r}" if self.excerpt else ""
        super().__init__(f"{reason}{where}{shown}")
