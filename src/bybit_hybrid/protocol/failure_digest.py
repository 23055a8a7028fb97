"""How repeated connection failures are logged: the first at WARNING, repeats summarised, ERROR
after a bound, one line when the connection works again.

With no network a socket retries every few seconds for as long as it takes; one WARNING line per
attempt (two sockets and REST) buried everything else, and nothing escalated. Per connection:

    first failure of a streak     WARNING  "<name>: connect failed: <reason> (retrying ...)"
    further failures              counted; one summary line per `summary_every_s`
    streak longer than error_after_s  the summaries turn ERROR (the first says so)
    success after a streak        WARNING  "<name>: connected again after N failures over Xs"

Pure: `now` is passed in; `LogLine`s are returned for the shell to log.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

WARNING: Final = 30  # logging.WARNING, without importing logging into the core
ERROR: Final = 40


@dataclass(frozen=True, slots=True)
class DigestConfig:
    summary_every_s: float = 30.0
    error_after_s: float = 60.0


@dataclass(frozen=True, slots=True)
class LogLine:
    level: int
    message: str


@dataclass(slots=True)
class _Streak:
    since: float
    failures: int
    last_reason: str
    summarised_at: float
    escalated: bool = False


class FailureDigest:
    """One per shell; connections are told apart by name (`private`, `public-0`, `rest`)."""

    def __init__(self, config: DigestConfig | None = None) -> None:
        self.config = config or DigestConfig()
        self._streaks: dict[str, _Streak] = {}

    def failed(self, name: str, reason: str, now: float) -> LogLine | None:
        streak = self._streaks.get(name)
        if streak is None:
            self._streaks[name] = _Streak(now, 1, reason, now)
            return LogLine(
                WARNING,
                f"{name}: {reason} (retrying with backoff; repeats are summarised every "
                f"{self.config.summary_every_s:g}s)",
            )
        streak.failures += 1
        streak.last_reason = reason
        return self._summary(name, streak, now)

    def succeeded(self, name: str, now: float) -> LogLine | None:
        streak = self._streaks.pop(name, None)
        if streak is None or streak.failures < 1:
            return None
        return LogLine(
            WARNING,
            f"{name}: connected again after {streak.failures} failed attempts over "
            f"{now - streak.since:.0f}s",
        )

    def failing(self) -> dict[str, float]:
        """Connections failing now, with when their streak began."""
        return {name: s.since for name, s in self._streaks.items()}

    def _summary(self, name: str, streak: _Streak, now: float) -> LogLine | None:
        cfg = self.config
        down_s = now - streak.since
        escalate = down_s >= cfg.error_after_s and not streak.escalated
        if not escalate and now - streak.summarised_at < cfg.summary_every_s:
            return None
        streak.summarised_at = now
        if escalate:
            streak.escalated = True
        level = ERROR if streak.escalated else WARNING
        bound = f" (over {cfg.error_after_s:g}s)" if escalate else ""
        return LogLine(
            level,
            f"{name}: still failing{bound}: {streak.failures} failed attempts in "
            f"{down_s:.0f}s, last: {streak.last_reason}",
        )
