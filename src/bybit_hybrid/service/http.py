"""The operator's HTTP surface of `run`: /metrics (Prometheus), /health and /status (JSON)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from bybit_hybrid.service.metrics import ServiceMetrics, health

log = logging.getLogger(__name__)


class OpsServer:
    """Serves one stack's metrics and status; bound to loopback unless told otherwise.

    `status` returns the stream's `get_status()`; `protection_status`, when given, the
    protection's `status()` (added under the key "protection" of /status).
    """

    def __init__(
        self,
        metrics: ServiceMetrics,
        status: Callable[[], dict[str, Any]],
        *,
        protection_status: Callable[[], dict[str, Any]] | None = None,
        mark_stale_s: float = 5.0,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self._metrics = metrics
        self._status = status
        self._protection_status = protection_status
        self._mark_stale_s = mark_stale_s
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None
        self.bound: tuple[str, int] | None = None

    @property
    def url(self) -> str:
        if self.bound is None:
            raise RuntimeError("server not started")
        host, port = self.bound
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{port}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._get_metrics)
        app.router.add_get("/health", self._get_health)
        app.router.add_get("/status", self._get_status)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        address = sockets[0].getsockname() if sockets else (self._host, self._port)
        self.bound = (str(address[0]), int(address[1]))
        log.info("metrics, health and status on %s", self.url)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _get_metrics(self, request: web.Request) -> web.Response:
        body = self._metrics.render()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _get_health(self, request: web.Request) -> web.Response:
        ok, reasons = health(self._status(), self._mark_stale_s)
        payload = {"status": "ok" if ok else "unhealthy", "reasons": reasons}
        return web.json_response(payload, status=200 if ok else 503)

    async def _get_status(self, request: web.Request) -> web.Response:
        payload = dict(self._status())
        if self._protection_status is not None:
            payload["protection"] = self._protection_status()
        return web.Response(text=json.dumps(payload, default=str), content_type="application/json")
