"""What `demo --accounts` watches: each worker's and the hub's /status, and the bus's marks.

The marks come straight off NATS (`bybit.marks.>`), as any consumer on another machine would
read them; positions, protection and bus health from the workers' /status. A child that does
not answer shows as "starting" or, once its process ended, "exited N".
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import aiohttp
import msgspec
import nats
from nats.aio.msg import Msg

from bybit_hybrid.bus.payloads import decode_mark
from bybit_hybrid.bus.subjects import MARKS_PREFIX
from bybit_hybrid.service.dashboard_accounts import (
    AccountPosition,
    AccountsState,
    AccountView,
    BusMarkView,
    HubView,
)

if TYPE_CHECKING:
    from nats.aio.client import Client

    from bybit_hybrid.service.commands.demo_children import Child

STATUS_TIMEOUT_S = 1.0
_ALERTS_KEPT = 20


class DemoWatch:
    """Collects the dashboard's snapshot; use as `async with DemoWatch(...) as watch:`."""

    def __init__(
        self, nats_url: str, sim_url: str, hub_url: str, workers: Mapping[str, str]
    ) -> None:
        self.nats_url, self.sim_url, self.hub_url = nats_url, sim_url, hub_url
        self.workers = dict(workers)
        self.children: dict[str, Child] = {}
        self._statuses: dict[str, dict[str, Any] | None] = dict.fromkeys(self.workers)
        self._hub: dict[str, Any] | None = None
        self._marks: dict[str, tuple[str, float]] = {}
        self._alerts: list[str] = []
        self._started_s = time.monotonic()
        self._session: aiohttp.ClientSession | None = None
        self._nc: Client | None = None

    async def __aenter__(self) -> DemoWatch:
        timeout = aiohttp.ClientTimeout(total=STATUS_TIMEOUT_S)
        self._session = aiohttp.ClientSession(timeout=timeout)
        self._nc = await nats.connect(self.nats_url, connect_timeout=5, max_reconnect_attempts=-1)
        await self._nc.subscribe(MARKS_PREFIX + ">", cb=self._on_mark)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._nc is not None:
            with contextlib.suppress(Exception):
                await self._nc.close()
        if self._session is not None:
            await self._session.close()

    async def _on_mark(self, msg: Msg) -> None:
        try:
            mark = decode_mark(msg.data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            self._alert(f"bad mark on {msg.subject}: {exc}")
            return
        self._marks[mark.symbol] = (str(mark.mark_price), time.monotonic())

    def _alert(self, text: str) -> None:
        self._alerts = [*self._alerts[-_ALERTS_KEPT:], text]

    async def _get(self, url: str) -> dict[str, Any] | None:
        assert self._session is not None
        try:
            async with self._session.get(url + "/status") as resp:
                body = await resp.json()
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return None
        return body if isinstance(body, dict) else None

    async def poll(self) -> None:
        """Reads every /status once, concurrently."""
        names = list(self.workers)
        results = await asyncio.gather(
            self._get(self.hub_url), *(self._get(self.workers[n]) for n in names)
        )
        self._hub = results[0]
        for name, status in zip(names, results[1:], strict=True):
            self._statuses[name] = status

    def snapshot(self) -> AccountsState:
        now_s = time.monotonic()
        marks = tuple(
            BusMarkView(symbol, mark, now_s - at_s)
            for symbol, (mark, at_s) in sorted(self._marks.items())
        )
        accounts = tuple(self._account(name) for name in self.workers)
        alerts = [*self._alerts, *self._exits()]
        for acct in accounts:
            alerts += [f"{acct.name}: {a}" for a in self._active_alerts(acct.name)]
        return AccountsState(
            elapsed_s=now_s - self._started_s,
            bus_url=self.nats_url,
            sim_url=self.sim_url,
            bus_connected=self._nc is not None and self._nc.is_connected,
            hub=self._hub_view(),
            accounts=accounts,
            marks=marks,
            alerts=tuple(alerts),
        )

    def _exits(self) -> list[str]:
        return [
            f"{child.name} exited with {child.returncode} (log {child.log_path})"
            for child in self.children.values()
            if child.returncode is not None
        ]

    def _state(self, name: str, status: dict[str, Any] | None) -> str:
        child = self.children.get(name)
        if child is not None and child.returncode is not None:
            return f"exited {child.returncode}"
        if status is None:
            return "starting"
        return "up" if status.get("ready") else "not ready"

    def _hub_view(self) -> HubView:
        hub = self._hub
        if hub is None:
            return HubView(self._state("hub", None))
        return HubView(
            state=self._hub_state(hub),
            public_sockets=int(hub.get("public_sockets", 0)),
            demand=len(hub.get("demand", ())),
            marks_published=int(hub.get("marks_published", 0)),
        )

    def _hub_state(self, hub: dict[str, Any]) -> str:
        child = self.children.get("hub")
        if child is not None and child.returncode is not None:
            return f"exited {child.returncode}"
        return "up" if hub.get("bus_connected") else "bus down"

    def _active_alerts(self, name: str) -> list[str]:
        status = self._statuses.get(name) or {}
        active = (status.get("alerts") or {}).get("active") or {}
        return [str(key) for key in active] if isinstance(active, dict) else []

    def _account(self, name: str) -> AccountView:
        status = self._statuses.get(name)
        state = self._state(f"worker-{name}", status)
        if status is None:
            return AccountView(name, state)
        bus = status.get("bus") or {}
        protection = status.get("protection") or {}
        trailing = protection.get("trailing") or {}
        return AccountView(
            name=name,
            state=state,
            marks_from=str(bus.get("mode", "-")),
            positions=_positions(status),
            events_published=int(bus.get("events_published", 0)),
            stops_sent=int(trailing.get("stops_sent", 0)),
            failovers=int(bus.get("failovers", 0)),
            hub_beat_age_s=_float(bus.get("hub_heartbeat_age_s")),
        )


def _float(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def _positions(status: dict[str, Any]) -> tuple[AccountPosition, ...]:
    """The stream's positions, with the protection's trail phase and stop when it has them."""
    protection = status.get("protection") or {}
    trail = {(p.get("symbol"), p.get("position_idx")): p for p in protection.get("positions") or ()}
    rows = []
    for p in status.get("positions") or ():
        t = trail.get((p.get("symbol"), p.get("position_idx")), {})
        stop = t.get("trail_confirmed_stop") or t.get("trail_stop")
        age = p.get("mark_age_s")
        rows.append(
            AccountPosition(
                symbol=str(p.get("symbol")),
                idx=int(p.get("position_idx", 0)),
                side=str(p.get("side")),
                size=str(p.get("size")),
                mark=str(p.get("mark_price") or "-"),
                mark_age_s=None if age is None else float(age),
                trail=str(t.get("trail_phase", "-")),
                stop="-" if stop is None else str(stop),
            )
        )
    return tuple(rows)
