"""The commands' shell around `AuthGuard`: logs its alerts, stops the program when it gives up.

`run` and `stream` add an `AuthWatch` as a stream listener and run `watch.loop()` beside the
stream; when `done` is set and `watch.fatal` holds a reason, the command exits with it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from bybit_hybrid.protocol.alerts import AlertRaised, Severity
from bybit_hybrid.protocol.auth_guard import AuthGuard, AuthGuardConfig, AuthVerdict, GiveUp
from bybit_hybrid.protocol.hybrid import CoreEvent
from bybit_hybrid.service.settings import AppSettings

log = logging.getLogger(__name__)

EVALUATE_EVERY_S = 1.0


class AuthWatch:
    """A stream listener; `fatal` gets the one-line reason when the key is given up on."""

    def __init__(
        self,
        settings: AppSettings,
        done: asyncio.Event,
        *,
        clock: Callable[[], float] = time.monotonic,
        alerts: Callable[[CoreEvent], None] | None = None,
    ) -> None:
        config = AuthGuardConfig(settings.auth_failure_critical_s, settings.auth_failure_exit_s)
        self.guard = AuthGuard(config)
        self.fatal: list[str] = []
        self._done = done
        self._clock = clock
        self.alerts = alerts  # also told of each alert (the metrics)

    def status(self) -> dict[str, object]:
        """For /status: the guard's phase, which sources are rejected, since when."""
        return self.guard.status(self._clock())

    def __call__(self, event: CoreEvent) -> None:
        self._handle(self.guard.on_event(event, self._clock()))

    async def loop(self) -> None:
        """Escalates and gives up on time even while no event arrives."""
        while True:
            await asyncio.sleep(min(EVALUATE_EVERY_S, self.guard.config.critical_after_s / 4))
            self._handle(self.guard.evaluate(self._clock()))

    def _handle(self, verdicts: list[AuthVerdict]) -> None:
        for verdict in verdicts:
            if isinstance(verdict, GiveUp):
                self.fatal.append(verdict.reason)
                self._done.set()
                continue
            raised = isinstance(verdict, AlertRaised)
            critical = verdict.severity is Severity.CRITICAL
            level = (logging.ERROR if critical else logging.WARNING) if raised else logging.INFO
            state = "raised" if raised else "cleared"
            fields = {
                "name": verdict.name,
                "severity": verdict.severity.value,
                "state": state,
                "message": verdict.message,
            }
            log.log(
                level,
                "alert %s %s (%s): %s; protection keeps running on REST while REST works",
                verdict.name,
                state,
                verdict.severity.value,
                verdict.message,
                extra={"event_fields": {"alert": fields}},
            )
            if self.alerts is not None:
                self.alerts(verdict)
