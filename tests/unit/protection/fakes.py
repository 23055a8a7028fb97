"""A small fake exchange for protection tests: it holds positions and stops, and misbehaves.

It is written from Bybit's rules (BYBIT_V5.md), not from the adapters: a stop on the wrong side
of the trigger-type price is refused with the live 10001 text, a stop for a flat position gets
"zero position", an unchanged stop gets 34040, a reduce-only order never overshoots and may fill
partly. Faults are scripted per call (`fail_stops`, `fail_closes`), replies can be held back
(`hold_stops`), the position list can lag (`lagging_rows`), and the position can change between
calls (`set_stop_by_hand`, `add`). `Rig` wires it to a `UnifiedProtection` and plays the stream.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import Any

from bybit_hybrid.protection.store import ProtectionStore
from bybit_hybrid.protection.unified import UnifiedProtection
from bybit_hybrid.protocol.domain import Instrument, PositionKey, PositionSnapshot, Side, Source
from bybit_hybrid.protocol.events import (
    MarkUpdated,
    PositionChanged,
    PositionClosed,
    PositionOpened,
    PositionView,
)
from bybit_hybrid.service.settings import load_settings
from bybit_hybrid.transport.errors import BybitError, api_error
from tests.support import wait_for

KEY = PositionKey("BTCUSDT", 0)
TICK = Decimal("0.10")
LOT = Decimal("0.001")
BTC = Instrument("BTCUSDT", "USDT", TICK, LOT, LOT, "Trading")
TRADING_STOP = "/v5/position/trading-stop"
ORDER_CREATE = "/v5/order/create"


def rate_limited() -> BybitError:
    return api_error(TRADING_STOP, 10006, "Too many visits!")


def zero_position() -> BybitError:
    return api_error(TRADING_STOP, 10001, "can not set tp/sl/ts for zero position")


def server_timeout() -> BybitError:
    return api_error(TRADING_STOP, 10000, "Server Timeout")


def no_permission() -> BybitError:
    return api_error(TRADING_STOP, 10005, "Permission denied, please check your API key")


@dataclass
class Held:
    """A position on the fake exchange."""

    side: Side
    size: Decimal
    entry: Decimal
    stop: Decimal | None = None
    open_time_ms: int | None = None
    stop_history: list[Decimal | None] = field(default_factory=list)


class FakeExchange:
    """Stands in for `ProtectionExchange`; every call is logged in `calls`."""

    def __init__(self, trigger_by: str = "MarkPrice") -> None:
        self.trigger_by = trigger_by
        self.positions: dict[PositionKey, Held] = {}
        self.prices: dict[str, dict[str, Decimal]] = {}
        self.calls: list[tuple[str, Any]] = []
        self.fail_stops: deque[BybitError] = deque()
        self.fail_closes: deque[BybitError] = deque()
        self.fail_instruments = 0
        self.fill_ratio = Decimal(1)
        self.lagging_rows: deque[PositionSnapshot | None] = deque()
        self.hold_stops: asyncio.Event | None = None
        self.server_ms = 1_700_000_000_000
        self._orders = itertools.count(1)

    # --- what the exchange holds -----------------------------------------------------------

    def stop_of(self, key: PositionKey = KEY) -> Decimal | None:
        held = self.positions.get(key)
        return None if held is None else held.stop

    def is_flat(self, key: PositionKey = KEY) -> bool:
        return key not in self.positions

    def price(self, symbol: str, kind: str = "MarkPrice") -> Decimal:
        return self.prices[symbol][kind]

    def set_prices(self, symbol: str, mark: Decimal, last: Decimal | None = None) -> None:
        self.prices[symbol] = {
            "MarkPrice": mark,
            "LastPrice": mark if last is None else last,
            "IndexPrice": mark,
        }

    def set_stop_by_hand(self, stop: Decimal, key: PositionKey = KEY) -> None:
        held = self.positions[key]
        held.stop = stop
        held.stop_history.append(stop)

    def stop_calls(self) -> list[Decimal]:
        return [arg for name, arg in self.calls if name == "set_stop"]

    def closes(self) -> list[Decimal]:
        return [arg for name, arg in self.calls if name == "close"]

    # --- the ProtectionExchange surface ----------------------------------------------------

    async def set_stop(self, key: PositionKey, stop: Decimal) -> bool:
        self.calls.append(("set_stop", stop))
        if self.hold_stops is not None:
            await self.hold_stops.wait()
        if self.fail_stops:
            raise self.fail_stops.popleft()
        held = self.positions.get(key)
        if held is None:
            raise zero_position()
        trigger = self.price(key.symbol, self.trigger_by)
        if (trigger - stop) * held.side.sign <= 0:
            raise api_error(
                TRADING_STOP, 10001, _wrong_side_text(held.side, stop, trigger, self.trigger_by)
            )
        if held.stop == stop:
            return False  # 34040 "not modified", which the real wrapper answers as False
        held.stop = stop
        held.stop_history.append(stop)
        return True

    async def open_row(self, key: PositionKey) -> PositionSnapshot | None:
        self.calls.append(("open_row", key))
        if self.lagging_rows:
            return self.lagging_rows.popleft()
        return self.row(key)

    def row(self, key: PositionKey = KEY) -> PositionSnapshot | None:
        held = self.positions.get(key)
        if held is None:
            return None
        return snapshot(key, held, self.price(key.symbol))

    async def close_at_market(self, key: PositionKey, side: Side, qty: Decimal) -> str:
        self.calls.append(("close", qty))
        if self.fail_closes:
            raise self.fail_closes.popleft()
        held = self.positions.get(key)
        if held is None or held.side is not side:
            raise api_error(
                ORDER_CREATE, 110017, "current position is zero, cannot fix reduce-only order qty"
            )
        filled = min(qty, held.size)
        if self.fill_ratio < 1:
            filled = max(LOT, (filled * self.fill_ratio).quantize(LOT, rounding=ROUND_DOWN))
        held.size -= filled
        if held.size <= 0:
            del self.positions[key]
        return f"order-{next(self._orders)}"

    async def trigger_price(self, symbol: str) -> Decimal | None:
        self.calls.append(("trigger_price", symbol))
        return self.price(symbol, self.trigger_by)

    def server_now_ms(self) -> int:
        return self.server_ms

    async def instruments(self) -> dict[str, Instrument]:
        if self.fail_instruments > 0:
            self.fail_instruments -= 1
            raise server_timeout()
        return {"BTCUSDT": BTC}


def _wrong_side_text(side: Side, stop: Decimal, trigger: Decimal, trigger_by: str) -> str:
    """Bybit's live text: prices ×1e8, the trigger price type after `??` (BYBIT_V5.md §7.3)."""
    rel = "should lower" if side is Side.BUY else "should greater"
    return (
        f"StopLoss:{int(stop * 10**8)} set for {side.value} position {rel} than "
        f"base_price:{int(trigger * 10**8)}??{trigger_by}"
    )


def snapshot(key: PositionKey, held: Held, mark: Decimal) -> PositionSnapshot:
    return PositionSnapshot(
        key=key,
        side=held.side,
        size=held.size,
        entry_price=held.entry,
        mark_price=mark,
        leverage=Decimal(10),
        unrealised_pnl=None,
        cum_realised_pnl=None,
        stop_loss=held.stop,
        take_profit=None,
        trailing_stop=None,
        liq_price=None,
        position_status="Normal",
        seq=1,
        created_time_ms=held.open_time_ms,
        updated_time_ms=held.open_time_ms,
        open_time_ms=held.open_time_ms,
        source=Source.REST,
        exchange_ts_ms=1,
    )


def view_of(key: PositionKey, held: Held | None, mark: Decimal, last: Held | None) -> PositionView:
    """The stream's view of the fake's position (size 0 and the last side once it is gone)."""
    shown = held or last
    assert shown is not None
    return PositionView(
        key=key,
        side=shown.side,
        size=Decimal(0) if held is None else held.size,
        entry_price=shown.entry,
        mark_price=mark,
        unrealised_pnl=None,
        leverage=Decimal(10),
        position_status="Normal",
        stop_loss=None if held is None else held.stop,
        take_profit=None,
        trailing_stop=None,
        liq_price=None,
        open_time_ms=shown.open_time_ms,
        status="closed" if held is None else "open",
        source=Source.TICKER,
        exchange_ts_ms=1,
        cs=1,
        seq=1,
        received_at=0.0,
    )


class Rig:
    """A `UnifiedProtection` on a `FakeExchange`, fed the way the stream would feed it."""

    def __init__(self, protection: UnifiedProtection, exchange: FakeExchange) -> None:
        self.protection = protection
        self.exchange = exchange
        self.sleeps: list[float] = []
        self.gate: asyncio.Event | None = None  # while set to an unset Event, sleeps wait
        self.monotonic_s = 1000.0
        self._last: dict[PositionKey, Held] = {}

    def open(
        self,
        side: Side,
        entry: str,
        mark: str,
        *,
        size: str = "0.010",
        stop: str | None = None,
        open_time_ms: int | None = None,
        key: PositionKey = KEY,
    ) -> None:
        """A position appears on the exchange and the stream reports it; by default a minute old."""
        if open_time_ms is None:
            open_time_ms = now_ms() - 60_000
        held = Held(side, Decimal(size), Decimal(entry), None, open_time_ms)
        if stop is not None:
            held.stop = Decimal(stop)
        self.exchange.positions[key] = held
        self.exchange.set_prices(key.symbol, Decimal(mark))
        self._last[key] = held
        self.protection.router.on_core_event(PositionOpened(self.view(key)))

    def view(self, key: PositionKey = KEY) -> PositionView:
        mark = self.exchange.price(key.symbol)
        return view_of(key, self.exchange.positions.get(key), mark, self._last.get(key))

    def mark(self, price: str, *, last: str | None = None, key: PositionKey = KEY) -> None:
        self.exchange.set_prices(
            key.symbol, Decimal(price), None if last is None else Decimal(last)
        )
        if key in self.exchange.positions:
            self.protection.router.on_core_event(MarkUpdated(self.view(key)))

    def push(self, *changed: str, key: PositionKey = KEY) -> None:
        """The private stream reports the exchange's current state of the position."""
        held = self.exchange.positions.get(key)
        if held is None:
            self.protection.router.on_core_event(PositionClosed(self.view(key)))
            return
        self._last[key] = held
        names = frozenset(changed or ("stop_loss",))
        self.protection.router.on_core_event(PositionChanged(self.view(key), names))

    async def settle(self) -> None:
        await wait_for(self.protection.idle, what="protection idle")

    def trail_stop(self, key: PositionKey = KEY) -> Decimal | None:
        trail = self.protection.trailing.trail(key)
        return None if trail is None else trail.stop_price


@asynccontextmanager
async def rig(
    store: ProtectionStore | None = None,
    *,
    instruments: bool = True,
    exchange: FakeExchange | None = None,
    wall: Callable[[], float] | None = None,
    **overrides: Any,
) -> AsyncIterator[Rig]:
    """A started rig; `overrides` are settings (e.g. trailing_monitor_only=True).

    These tests feed positions that are already old when first seen and judge the close
    mechanics, so they opt in to closing them (`aged_close_existing`, issue 18)."""
    defaults = {"aged_max_age_h": 1.0, "aged_close_existing": True}
    settings = load_settings(overrides={**defaults, **overrides})
    fake = exchange or FakeExchange(settings.trailing_sl_trigger_by)
    holder: list[Rig] = []

    async def sleep(seconds: float) -> None:
        holder[0].sleeps.append(seconds)
        gate = holder[0].gate
        if gate is not None:
            await gate.wait()
        await asyncio.sleep(0)

    no_rest: Any = None  # every exchange call goes to the fake
    kwargs: dict[str, Any] = {"sleep": sleep}
    if wall is not None:
        kwargs["clock"] = wall
    if "monotonic" in UnifiedProtection.__init__.__code__.co_varnames:
        kwargs["monotonic"] = lambda: holder[0].monotonic_s
    protection = UnifiedProtection(
        settings,
        no_rest,
        store=store or ProtectionStore(":memory:"),
        instruments={"BTCUSDT": BTC} if instruments else {},
        **kwargs,
    )
    holder.append(Rig(protection, fake))
    _use(protection, fake)
    await protection.start(load_instruments=False)
    try:
        yield holder[0]
    finally:
        await protection.stop()


def _use(protection: UnifiedProtection, fake: FakeExchange) -> None:
    """Every adapter talks to the fake (and its verified closer, where it has one)."""
    protection.exchange = fake  # type: ignore[assignment]
    for adapter in (protection.trailing, protection.aged):
        adapter._exchange = fake  # the fake is a ProtectionGateway
        closer = getattr(adapter, "_closer", None)
        if closer is not None:
            closer._exchange = fake


def now_ms() -> int:
    return time.time_ns() // 1_000_000


async def until(condition: Callable[[], bool], what: str) -> None:
    await wait_for(condition, what=what)
