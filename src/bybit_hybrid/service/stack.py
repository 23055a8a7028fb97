"""The `run` stack in one object: stream, protection (router, trailing, aged), metrics, HTTP."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from bybit_hybrid.facade import PositionStream
from bybit_hybrid.protection.store import ProtectionStore
from bybit_hybrid.protection.unified import UnifiedProtection
from bybit_hybrid.protocol.hybrid import CoreEvent
from bybit_hybrid.service.http import OpsServer
from bybit_hybrid.service.metrics import ServiceMetrics
from bybit_hybrid.service.paths import default_state_db, state_file
from bybit_hybrid.service.settings import AppSettings
from bybit_hybrid.service.streams import make_position_stream
from bybit_hybrid.transport.endpoints import Endpoints
from bybit_hybrid.transport.errors import BybitError
from bybit_hybrid.transport.rest import BybitRestClient
from bybit_hybrid.wire.signing import Credentials

log = logging.getLogger(__name__)


class RunStack:
    """Builds and owns everything `run` (and `demo`) runs; `start()` then `stop()` once."""

    def __init__(
        self,
        settings: AppSettings,
        api_key: str,
        api_secret: str,
        endpoint_kwargs: dict[str, Any],
        *,
        listeners: tuple[Callable[[CoreEvent], None], ...] = (),
    ) -> None:
        self.settings = settings
        where = {k: v for k, v in endpoint_kwargs.items() if k != "proxy"}
        endpoints = Endpoints.select(**where)
        # The protection's own client: single attempts (the adapters retry), no client-side
        # limiter (the protection's rolling-window limiter is the account's one).
        self.rest = BybitRestClient(
            endpoints.rest_url,
            Credentials(api_key, api_secret),
            max_retries=0,
            limits_per_s={},
            proxy=endpoint_kwargs.get("proxy"),
        )
        self.state_db = state_file(settings.state_db or default_state_db(endpoints.name, api_key))
        self.store = ProtectionStore(self.state_db)
        self.protection = UnifiedProtection(settings, self.rest, store=self.store)
        self.stream: PositionStream = make_position_stream(
            settings, api_key, api_secret, None, endpoint_kwargs
        )
        clock = getattr(self.stream, "now", None)
        self.metrics = ServiceMetrics(clock) if callable(clock) else ServiceMetrics()
        self.metrics.bind(self.stream, self.protection, [self.rest.metrics])
        self.stream.add_listener(self.metrics.on_event)
        for listener in listeners:
            self.stream.add_listener(listener)
        self.protection.attach(self.stream)
        self.server: OpsServer | None = None
        self.extra_status: dict[str, Callable[[], Any]] = {}

    async def start(self, *, metrics_port: int | None = None) -> None:
        """Starts the HTTP server (when a port is given), the protection, then the stream."""
        if metrics_port is not None:
            self.server = OpsServer(
                self.metrics,
                self.status,
                protection_status=self.protection.status,
                mark_stale_s=self.settings.rollout_mark_stale_s,
                host=self.settings.metrics_host,
                port=metrics_port,
            )
            await self.server.start()
        await self._sync_clock()
        await self.protection.start()
        await self.stream.start()

    def status(self) -> dict[str, Any]:
        """The stream's `get_status()` plus what `extra_status` adds (e.g. "auth" in `run`)."""
        status = dict(self.stream.get_status())
        status.update({name: part() for name, part in self.extra_status.items()})
        return status

    async def stop(self) -> None:
        """Stops everything started, in reverse order; safe after a failed start."""
        try:
            await self.stream.stop()
            await self.protection.stop()
            await self.rest.close()
            if self.server is not None:
                await self.server.stop()
        finally:
            self.store.close()

    async def _sync_clock(self) -> None:
        try:
            await self.rest.sync_clock()
        except BybitError as exc:
            log.warning("could not read the server clock, using the local one: %s", exc)
