"""A stream + unified protection wired to the simulator, with a clock the test can move forward.

Prices are forced with `set_prices(mark=, last=)` on paused symbols (or with a trend), so every
decision is deterministic; waits go through `wait_for` with multiples of `UNIT_S`.
"""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bybit_hybrid import BybitHybridStream
from bybit_hybrid.protection.retry import RetryPolicy
from bybit_hybrid.protection.store import ProtectionStore
from bybit_hybrid.protection.unified import UnifiedProtection
from bybit_hybrid.protocol.domain import PositionKey
from bybit_hybrid.service.settings import load_settings
from bybit_hybrid.sim import EventKind, HistoryEvent, SimServer
from bybit_hybrid.transport.http import AiohttpBackend
from bybit_hybrid.transport.rest import BybitRestClient
from bybit_hybrid.wire.signing import Credentials
from tests.campaign.invariants import stops_of
from tests.integration.stream_harness import CONFIG, sim_config
from tests.support import UNIT_S, wait_for

FAST_RETRY = RetryPolicy(max_retries=3, base_delay_s=0.05, max_delay_s=0.3)
REST_TIMEOUT_S = 1.0 * UNIT_S


@dataclass
class SkewClock:
    """Wall clock (and monotonic clock) plus an offset the test advances instead of sleeping."""

    offset_s: float = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset_s

    def advance(self, seconds: float) -> None:
        self.offset_s += seconds

    def monotonic(self) -> float:
        """The monotonic clock with the same offset (the trail's interval rule runs on it)."""
        return time.monotonic() + self.offset_s


@dataclass
class Rig:
    sim: SimServer
    stream: BybitHybridStream
    rest: BybitRestClient
    protection: UnifiedProtection
    store: ProtectionStore
    clock: SkewClock
    closed: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    # --- exchange side -------------------------------------------------------------------

    def stop_requests(self, symbol: str | None = None) -> list[HistoryEvent]:
        return [
            e
            for e in self.sim.exchange.history.of_kind(EventKind.TRADING_STOP)
            if symbol is None or e.symbol == symbol
        ]

    def sent_stops(self, symbol: str) -> list[Decimal]:
        """stopLoss of every accepted trading-stop request for `symbol`, in order."""
        return [
            Decimal(e.details["body"]["stopLoss"])
            for e in self.stop_requests(symbol)
            if e.details["ret_code"] == 0
        ]

    def orders(self, symbol: str) -> list[HistoryEvent]:
        """Orders the client placed (control-route opens are excluded)."""
        return [
            e
            for e in self.sim.exchange.history.of_kind(EventKind.ORDER)
            if e.symbol == symbol and e.reason is not None and e.reason.value == "order"
        ]

    def closes(self, symbol: str) -> list[HistoryEvent]:
        return [e for e in self.sim.exchange.history.of_kind(EventKind.CLOSE) if e.symbol == symbol]

    async def open(self, symbol: str, side: str, qty: str, idx: int = 0) -> Decimal:
        """Opens on a paused symbol and waits until protection tracks it with a mark."""
        self.sim.pause_ticks(symbol)
        await self.sim.open_position(symbol, side, Decimal(qty), idx)
        key = PositionKey(symbol, idx)
        await wait_for(
            lambda: (
                (m := self.protection.manager.get(key)) is not None
                and m.view.mark_price is not None
            ),
            3 * UNIT_S,
            f"protection to track {key}",
        )
        return self.sim.exchange.positions[(symbol, idx)].avg_price

    async def move(self, symbol: str, price: Decimal) -> None:
        """Mark and last to `price` (the trend walk moves last, and mark follows it)."""
        await self.sim.set_prices(symbol, mark=price, last=price)

    async def move_and_settle(self, symbol: str, price: Decimal, idx: int = 0) -> None:
        """Moves the price and waits until protection saw that mark and went idle."""
        await self.move(symbol, price)
        key = PositionKey(symbol, idx)
        await wait_for(
            lambda: (m := self.protection.manager.get(key)) is None or m.view.mark_price == price,
            3 * UNIT_S,
            f"mark {price} for {key}",
        )
        await self.settle()

    async def settle(self) -> None:
        await wait_for(self.protection.idle, 3 * UNIT_S, "protection to go idle")

    # --- teardown --------------------------------------------------------------------------

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        await self.stream.stop()
        await self.protection.stop()
        await self.rest.close()
        backend = self.extra.get("backend")
        if backend is not None:
            await backend.close()
        self.store.close()


def protection_rest(
    sim: SimServer, timeout_s: float = REST_TIMEOUT_S
) -> tuple[AiohttpBackend, BybitRestClient]:
    """Protection's REST client against `sim` and its backend (the caller closes both): no
    retries of its own and no client-side limits (protection's policy owns both), calls time
    out after `timeout_s` (the sim's `timeout` faults never answer)."""
    backend = AiohttpBackend(total_timeout_s=timeout_s, connect_timeout_s=timeout_s)
    rest = BybitRestClient(
        sim.base_url,
        Credentials(sim.api_key, sim.api_secret),
        backend=backend,
        max_retries=0,
        limits_per_s={},
    )
    return backend, rest


async def start_rig(
    sim: SimServer,
    db_path: Path,
    *,
    clock: SkewClock | None = None,
    retry: RetryPolicy = FAST_RETRY,
    rest_timeout_s: float = REST_TIMEOUT_S,
    **overrides: Any,
) -> Rig:
    """Stream + protection against `sim`, state in `db_path`; `overrides` are AppSettings.

    REST calls time out after `rest_timeout_s` (the sim's `timeout` faults never answer)."""
    settings = load_settings(overrides={"state_db": db_path, **overrides})
    clock = clock or SkewClock()
    stream = BybitHybridStream(
        sim.api_key, sim.api_secret, base_url=sim.base_url, config=CONFIG, rng=random.Random(7)
    )
    backend, rest = protection_rest(sim, rest_timeout_s)
    store = ProtectionStore(db_path)
    protection = UnifiedProtection(
        settings, rest, store=store, retry=retry, clock=clock, monotonic=clock.monotonic
    )
    protection.attach(stream)
    rig = Rig(sim, stream, rest, protection, store, clock, extra={"backend": backend})
    try:
        await protection.start()
        await stream.start()
        await stream.wait_ready(3 * UNIT_S)
    except BaseException:
        await rig.close()
        raise
    return rig


def held_stop(sim: SimServer, symbol: str, idx: int = 0) -> Decimal:
    """The stop-loss the simulator holds for the position (0 = none)."""
    pos = sim.exchange.positions.get((symbol, idx))
    return Decimal(0) if pos is None or not pos.is_open else pos.stop_loss


def trail_stop(rig: Rig, key: PositionKey) -> Decimal | None:
    """The tightest stop the trail holds (wanted or confirmed, whatever it calls them)."""
    trail = rig.protection.trailing.trail(key)
    stops = [] if trail is None else stops_of(trail)
    if not stops:
        return None
    return max(stops) if trail is not None and trail.side.value == "Buy" else min(stops)


@pytest.fixture(name="sim")
async def quiet_sim() -> AsyncIterator[SimServer]:
    """No positions at start, 20 Hz ticks: the protection tests open what they need."""
    async with SimServer(sim_config(positions=0, rate_hz=20.0)) as server:
        yield server


@pytest.fixture(name="rig")
async def protection_rig(sim: SimServer, tmp_path: Path) -> AsyncIterator[Rig]:
    """Stream + protection on `sim`, no minimum interval between stop moves."""
    rig = await start_rig(sim, tmp_path / "state.sqlite3", trailing_min_update_interval_s=0)
    try:
        yield rig
    finally:
        await rig.close()
