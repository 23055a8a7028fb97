"""Fault-injection state of the simulator: which misbehaviours are armed, with time passed in."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class ConnKind(Enum):
    """Which WebSocket endpoint a connection came in on."""

    PUBLIC = "public"
    PRIVATE = "private"


class Target(Enum):
    """Which connections a socket fault applies to."""

    PUBLIC = "public"
    PRIVATE = "private"
    ALL = "all"

    def matches(self, kind: ConnKind) -> bool:
        return self is Target.ALL or self.value == kind.value


class RestErrorMode(Enum):
    """What an armed REST fault answers instead of the real result."""

    RATE_LIMIT = "10006"
    TIMESTAMP = "10002"
    SERVER_ERROR = "5xx"


@dataclass(slots=True)
class FaultState:
    """Armed faults; times are monotonic seconds supplied by the server shell."""

    refuse_until_s: float = 0.0
    reject_auth_count: int = 0
    reject_auth_until_s: float = 0.0
    delay_ms: int = 0
    rest_error_mode: RestErrorMode | None = None
    rest_error_count: int = 0
    rest_error_path: str | None = None
    stale_marks: dict[str, str] = field(default_factory=dict)
    muted: set[str] = field(default_factory=set)

    def refusing(self, now_s: float) -> bool:
        return now_s < self.refuse_until_s

    def take_auth_rejection(self, now_s: float) -> bool:
        """True when this auth must fail; consumes one of the counted rejections."""
        if now_s < self.reject_auth_until_s:
            return True
        if self.reject_auth_count > 0:
            self.reject_auth_count -= 1
            return True
        return False

    def take_rest_error(self, path: str, signed: bool) -> RestErrorMode | None:
        """The error to answer for this call, if one is armed (consumes one)."""
        if self.rest_error_mode is None or self.rest_error_count <= 0:
            return None
        wanted = signed if self.rest_error_path is None else path == self.rest_error_path
        if not wanted:
            return None
        mode = self.rest_error_mode
        self.rest_error_count -= 1
        if self.rest_error_count == 0:
            self.rest_error_mode = None
        return mode

    def clear(self) -> None:
        self.refuse_until_s = 0.0
        self.reject_auth_count = 0
        self.reject_auth_until_s = 0.0
        self.delay_ms = 0
        self.rest_error_mode = None
        self.rest_error_count = 0
        self.rest_error_path = None
        self.stale_marks.clear()
        self.muted.clear()

    def to_json(self, now_s: float) -> dict[str, object]:
        return {
            "refusing_s": max(0.0, self.refuse_until_s - now_s),
            "reject_auth_count": self.reject_auth_count,
            "reject_auth_s": max(0.0, self.reject_auth_until_s - now_s),
            "delay_ms": self.delay_ms,
            "rest_error_mode": None if self.rest_error_mode is None else self.rest_error_mode.value,
            "rest_error_count": self.rest_error_count,
            "rest_error_path": self.rest_error_path,
            "stale_marks": dict(self.stale_marks),
            "muted": sorted(self.muted),
        }
