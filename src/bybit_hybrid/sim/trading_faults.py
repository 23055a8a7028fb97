"""Trading-fault rules of the sim: failures per retCode, slow replies, partial fills, hand stops.

Pure state with time passed in (monotonic seconds from the server shell). A rule is armed for a
count of requests, for a window of seconds, or both (whichever lasts longer); `take_*` consumes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum
from typing import Final

STOP_PATH: Final = "/v5/position/trading-stop"
ORDER_PATH: Final = "/v5/order/create"
PATH_ALIASES: Final = {
    "trading-stop": STOP_PATH,
    "trading_stop": STOP_PATH,
    STOP_PATH: STOP_PATH,
    "order": ORDER_PATH,
    "order/create": ORDER_PATH,
    ORDER_PATH: ORDER_PATH,
}


class Failure(Enum):
    """What an armed trading failure answers (Bybit's retCode; timeouts answer nothing)."""

    RATE_LIMIT = "10006"  # `Too many visits!` with X-Bapi-* headers, request not applied
    ZERO_POSITION = "10001_zero"  # `can not set tp/sl/ts for zero position` (trading-stop)
    WRONG_SIDE = "10001_side"  # `StopLoss:... should lower than base_price:...` (trading-stop)
    TIMESTAMP = "10002"  # recv_window rejection, not applied
    SERVER = "10016"  # `Internal System Error.`, not applied
    REDUCE_ONLY_ZERO = "110017"  # reduce-only order on "zero position" (order/create)
    TIMEOUT = "timeout"  # never answered and not applied
    LOST_REPLY = "lost_reply"  # applied, but the reply never comes

    @property
    def applies_request(self) -> bool:
        return self is Failure.LOST_REPLY

    @property
    def answers(self) -> bool:
        return self not in (Failure.TIMEOUT, Failure.LOST_REPLY)


_ONLY_ON: Final = {
    Failure.ZERO_POSITION: STOP_PATH,
    Failure.WRONG_SIDE: STOP_PATH,
    Failure.REDUCE_ONLY_ZERO: ORDER_PATH,
}


def trading_path(raw: str) -> str:
    path = PATH_ALIASES.get(raw)
    if path is None:
        raise ValueError(f"path {raw!r} is not trading-stop or order")
    return path


@dataclass(slots=True)
class Armed:
    """How long a rule lasts: `count` more requests and/or until monotonic `until_s`, whichever
    ends later (every matching request uses up one of the count)."""

    count: int = 0
    until_s: float = 0.0
    symbol: str | None = None

    def matches(self, symbol: str | None, now_s: float) -> bool:
        if self.symbol is not None and symbol != self.symbol:
            return False
        return self.count > 0 or now_s < self.until_s

    def consume(self) -> None:
        if self.count > 0:
            self.count -= 1

    def live(self, now_s: float) -> bool:
        return self.count > 0 or now_s < self.until_s

    def to_json(self, now_s: float) -> dict[str, object]:
        return {
            "count": self.count,
            "seconds": round(max(0.0, self.until_s - now_s), 3),
            "symbol": self.symbol,
        }


@dataclass(slots=True)
class FailureRule:
    path: str
    failure: Failure
    armed: Armed
    reset_ms: int = 1000


@dataclass(slots=True)
class DelayRule:
    path: str
    delay_ms: int
    armed: Armed


@dataclass(slots=True)
class PartialRule:
    fraction: Decimal
    armed: Armed


@dataclass(slots=True)
class HandStopRule:
    """After one of our trading-stop requests is applied, another client moves the stop by
    `ticks` (positive = tighter, i.e. towards the mark; negative = looser) before we hear back."""

    ticks: int
    armed: Armed


@dataclass(slots=True)
class TradingFaultState:
    """Armed trading faults, newest rule first within each kind."""

    failures: list[FailureRule] = field(default_factory=list)
    delays: list[DelayRule] = field(default_factory=list)
    partials: list[PartialRule] = field(default_factory=list)
    hand_stops: list[HandStopRule] = field(default_factory=list)
    injected: dict[str, int] = field(default_factory=dict)

    def arm_failure(self, path: str, failure: Failure, armed: Armed, reset_ms: int = 1000) -> None:
        only = _ONLY_ON.get(failure)
        if only is not None and only != path:
            raise ValueError(f"{failure.value} is answered by {only} only")
        if reset_ms < 0:
            raise ValueError("reset_ms must not be negative")
        self.failures.insert(0, FailureRule(path, failure, armed, reset_ms))

    def take_failure(self, path: str, symbol: str | None, now_s: float) -> FailureRule | None:
        for rule in self.failures:
            if rule.path == path and rule.armed.matches(symbol, now_s):
                rule.armed.consume()
                self._count(f"{_short(path)}:{rule.failure.value}")
                self._prune(now_s)
                return rule
        return None

    def take_delay_ms(self, path: str, symbol: str | None, now_s: float) -> int:
        for rule in self.delays:
            if rule.path == path and rule.armed.matches(symbol, now_s):
                rule.armed.consume()
                self._count(f"{_short(path)}:delay")
                self._prune(now_s)
                return rule.delay_ms
        return 0

    def take_partial(self, symbol: str | None, now_s: float) -> Decimal | None:
        for rule in self.partials:
            if rule.armed.matches(symbol, now_s):
                rule.armed.consume()
                self._count("order:partial_fill")
                self._prune(now_s)
                return rule.fraction
        return None

    def take_hand_stop(self, symbol: str | None, now_s: float) -> int | None:
        for rule in self.hand_stops:
            if rule.armed.matches(symbol, now_s):
                rule.armed.consume()
                self._count("trading-stop:hand_stop")
                self._prune(now_s)
                return rule.ticks
        return None

    def _count(self, name: str) -> None:
        self.injected[name] = self.injected.get(name, 0) + 1

    def _prune(self, now_s: float) -> None:
        self.failures = [r for r in self.failures if r.armed.live(now_s)]
        self.delays = [r for r in self.delays if r.armed.live(now_s)]
        self.partials = [r for r in self.partials if r.armed.live(now_s)]
        self.hand_stops = [r for r in self.hand_stops if r.armed.live(now_s)]

    def live_rules(self, now_s: float) -> int:
        """How many rules are still armed (a window that ran out without a request is not)."""
        self._prune(now_s)
        return len(self.failures) + len(self.delays) + len(self.partials) + len(self.hand_stops)

    def clear(self) -> None:
        """Disarms every rule; the injected counters stay (they are a record, not a switch)."""
        self.failures.clear()
        self.delays.clear()
        self.partials.clear()
        self.hand_stops.clear()

    def to_json(self, now_s: float) -> dict[str, object]:
        self._prune(now_s)
        return {
            "failures": [
                {"path": r.path, "mode": r.failure.value, **r.armed.to_json(now_s)}
                for r in self.failures
            ],
            "reply_delays": [
                {"path": r.path, "ms": r.delay_ms, **r.armed.to_json(now_s)} for r in self.delays
            ],
            "partial_fills": [
                {"fraction": str(r.fraction), **r.armed.to_json(now_s)} for r in self.partials
            ],
            "hand_stops": [{"ticks": r.ticks, **r.armed.to_json(now_s)} for r in self.hand_stops],
            "injected": dict(self.injected),
        }


def _short(path: str) -> str:
    return "trading-stop" if path == STOP_PATH else "order"


def armed(count: int, seconds: float, symbol: str | None, now_s: float) -> Armed:
    """A validated lifetime: at least one of count and seconds must be positive."""
    if count < 0 or seconds < 0:
        raise ValueError("count and seconds must not be negative")
    if count == 0 and seconds == 0:
        raise ValueError("give count (requests) or seconds (a window), or both")
    return Armed(count, now_s + seconds if seconds else 0.0, symbol)


@dataclass(frozen=True, slots=True)
class FaultSpec:
    """One `--trading-fault` of the sim CLI, parsed: what to arm and for how long."""

    kind: str  # "failure", "reply_delay", "partial_fill" or "hand_stop"
    path: str | None
    value: str  # the mode, the delay in ms, the fraction or the ticks
    count: int
    seconds: float
    symbol: str | None
    reset_ms: int = 1000


_SPEC_HELP: Final = (
    "PATH:MODE, reply-delay:PATH:MS, partial-fill:FRACTION or hand-stop:TICKS, then "
    ",count=N and/or ,seconds=S (optional ,symbol=SYM, ,reset_ms=MS)"
)


def parse_fault_spec(text: str) -> FaultSpec:
    """`trading-stop:10006,seconds=30`, `order:timeout,count=2`, `reply-delay:trading-stop:500,
    count=3`, `partial-fill:0.5,count=1`, `hand-stop:5,count=1`; ValueError names the bad part."""
    head, *options = text.split(",")
    parts = head.split(":")
    opts: dict[str, str] = {}
    for option in options:
        name, sep, value = option.partition("=")
        if not sep or name not in ("count", "seconds", "symbol", "reset_ms"):
            raise ValueError(f"trading fault {text!r}: bad option {option!r} ({_SPEC_HELP})")
        opts[name] = value
    try:
        count, seconds = int(opts.get("count", 0)), float(opts.get("seconds", 0))
        reset_ms = int(opts.get("reset_ms", 1000))
    except ValueError:
        raise ValueError(
            f"trading fault {text!r}: count/seconds/reset_ms must be numbers"
        ) from None
    if count <= 0 and seconds <= 0:
        raise ValueError(f"trading fault {text!r}: give count=N or seconds=S")
    symbol = opts.get("symbol")
    if parts[0] in ("reply-delay", "reply_delay") and len(parts) == 3:
        return FaultSpec("reply_delay", trading_path(parts[1]), parts[2], count, seconds, symbol)
    if parts[0] in ("partial-fill", "partial_fill") and len(parts) == 2:
        return FaultSpec("partial_fill", None, parts[1], count, seconds, symbol)
    if parts[0] in ("hand-stop", "hand_stop") and len(parts) == 2:
        return FaultSpec("hand_stop", None, parts[1], count, seconds, symbol)
    if len(parts) == 2 and parts[0] in PATH_ALIASES:
        failure, path = Failure(parts[1]), trading_path(parts[0])  # ValueError names the mode
        only = _ONLY_ON.get(failure)
        if only is not None and only != path:
            raise ValueError(f"trading fault {text!r}: {failure.value} is answered by {only} only")
        return FaultSpec("failure", path, parts[1], count, seconds, symbol, reset_ms)
    raise ValueError(f"trading fault {text!r} is not {_SPEC_HELP}")
