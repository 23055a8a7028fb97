"""The hub's HTTP surface: /health and /status (JSON), on loopback unless told otherwise."""

from __future__ import annotations

import json
import logging

from aiohttp import web

from bybit_hybrid.bus.hub import MarkHub

log = logging.getLogger(__name__)


class HubServer:
    def __init__(self, hub: MarkHub, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._hub = hub
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None
        self.url: str | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/health", self._get_health)
        app.router.add_get("/status", self._get_status)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []
        host, port = sockets[0].getsockname()[:2] if sockets else (self._host, self._port)
        self.url = f"http://{host}:{port}"
        log.info("hub health and status on %s", self.url)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _get_health(self, _request: web.Request) -> web.Response:
        ok, reasons = self._hub.health()
        payload = {"status": "ok" if ok else "unhealthy", "reasons": reasons}
        return web.json_response(payload, status=200 if ok else 503)

    async def _get_status(self, _request: web.Request) -> web.Response:
        body = json.dumps(self._hub.status(), default=str)
        return web.Response(text=body, content_type="application/json")
