"""Seeded random-walk ticker state per symbol (last/mark/index/book), kept as integer ticks."""

from __future__ import annotations

import random
from decimal import Decimal
from enum import Enum
from typing import Final

from bybit_hybrid.sim.instruments import Instrument

# How often each kind of change happens per symbol per tick; the rest of the mass is "no change".
# Book-only and trade-only ticks carry no markPrice, so clients must merge deltas, not replace.
_P_BOOK: Final = 0.30
_P_TRADE: Final = 0.60
_P_MARK: Final = 0.90
_FUNDING_INTERVAL_MS: Final = 8 * 3600 * 1000


class TickKind(Enum):
    """What one tick changed for one symbol."""

    NONE = "none"
    BOOK = "book"
    TRADE = "trade"
    MARK = "mark"


def _fmt_units(units: int, scale: int) -> str:
    """Integer in units of 10**-scale -> fixed-point text, e.g. (650005, 1) -> '65000.5'."""
    if scale == 0:
        return str(units)
    sign = "-" if units < 0 else ""
    digits = str(abs(units)).rjust(scale + 1, "0")
    return f"{sign}{digits[:-scale]}.{digits[-scale:]}"


def _scale_of(step: Decimal) -> int:
    exponent = step.normalize().as_tuple().exponent
    assert isinstance(exponent, int)
    return max(0, -exponent)


class TickerState:
    """One symbol's ticker: integer ticks for the walk, wire strings in `fields`."""

    __slots__ = (
        "ask_size",
        "bid_size",
        "cs",
        "fields",
        "index",
        "inst",
        "last",
        "mark",
        "open_interest",
        "paused",
        "prev_24h",
        "qty_scale",
        "quiet",
        "tick_units",
        "trend_ticks",
        "turnover",
        "vol_ticks",
        "volume",
    )

    def __init__(self, inst: Instrument, rng: random.Random, now_ms: int) -> None:
        self.inst = inst
        self.tick_units = int(inst.tick_size * (10**inst.price_scale))
        self.qty_scale = _scale_of(inst.qty_step)
        base = int(inst.base_price / inst.tick_size)
        # Step size ~0.005% of price so BTC moves a few dollars per trade tick.
        self.vol_ticks = max(1, int(inst.base_price * Decimal("0.00005") / inst.tick_size))
        self.last = base
        self.mark = base
        self.index = base
        self.prev_24h = base + rng.randint(-50, 50) * self.vol_ticks
        self.bid_size = rng.randint(1, 5000)
        self.ask_size = rng.randint(1, 5000)
        self.volume = rng.randint(10_000, 10_000_000)
        self.open_interest = rng.randint(10_000, 10_000_000)
        self.turnover = Decimal(self.volume) * inst.qty_step * inst.base_price
        self.cs = rng.randint(1_000_000, 9_000_000_000)
        self.paused = False
        # A quiet market: trades and book changes go on, the mark and index never move.
        self.quiet = False
        self.trend_ticks = 0
        self.fields: dict[str, str] = {}
        self._init_fields(now_ms)

    # -- formatting -------------------------------------------------------------------------

    def price_str(self, ticks: int) -> str:
        return _fmt_units(ticks * self.tick_units, self.inst.price_scale)

    def qty_str(self, steps: int) -> str:
        step_units = int(self.inst.qty_step * (10**self.qty_scale))
        return _fmt_units(steps * step_units, self.qty_scale)

    def price(self, ticks: int) -> Decimal:
        return ticks * self.inst.tick_size

    def _pcnt(self) -> str:
        change = Decimal(self.last - self.prev_24h) / Decimal(self.prev_24h)
        return str(change.quantize(Decimal("0.000001")))

    def _oi_value(self) -> str:
        value = self.price(self.mark) * self.open_interest * self.inst.qty_step
        return str(value.quantize(Decimal("0.01")))

    def _init_fields(self, now_ms: int) -> None:
        next_funding_ms = (now_ms // _FUNDING_INTERVAL_MS + 1) * _FUNDING_INTERVAL_MS
        last = self.price_str(self.last)
        high = self.price_str(max(self.last, self.prev_24h) + self.vol_ticks)
        low = self.price_str(max(1, min(self.last, self.prev_24h) - self.vol_ticks))
        oi = self.qty_str(self.open_interest)
        oi_value = self._oi_value()
        self.fields = {
            "symbol": self.inst.symbol,
            "tickDirection": "ZeroPlusTick",
            "price24hPcnt": self._pcnt(),
            "lastPrice": last,
            "prevPrice24h": self.price_str(self.prev_24h),
            "highPrice24h": high,
            "lowPrice24h": low,
            "prevPrice1h": last,
            "markPrice": last,
            "indexPrice": last,
            "openInterest": oi,
            "openInterestValue": oi_value,
            "singleOpenInterest": oi,
            "singleOpenInterestValue": oi_value,
            "turnover24h": str(self.turnover.quantize(Decimal("0.0001"))),
            "volume24h": self.qty_str(self.volume),
            "fundingIntervalHour": "8",
            "fundingCap": "0.005",
            "nextFundingTime": str(next_funding_ms),
            "fundingRate": "0.0001",
            "bid1Price": self.price_str(self.last),
            "bid1Size": self.qty_str(self.bid_size),
            "ask1Price": self.price_str(self.last + 1),
            "ask1Size": self.qty_str(self.ask_size),
            "preOpenPrice": "",
            "preQty": "",
            "curPreListingPhase": "",
        }

    # -- moves ------------------------------------------------------------------------------

    def step(self, rng: random.Random) -> tuple[str, ...]:
        """Advances one tick; returns the names of the fields that changed (maybe none).

        A move that lands on the same tick changes nothing, and Bybit's deltas carry only
        fields whose value changed, so names are filtered by value, not by intent.
        """
        before = self.fields.copy()
        return self._really_changed(before, self._move(rng))

    def _really_changed(self, before: dict[str, str], names: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(name for name in names if self.fields[name] != before.get(name))

    def _move(self, rng: random.Random) -> tuple[str, ...]:
        roll = rng.random()
        if self.quiet:
            if roll < _P_TRADE / 2:
                return self._book_move(rng)
            return self._trade_move(rng.randint(-self.vol_ticks, self.vol_ticks))
        if self.trend_ticks:
            return self._trend_move(rng)
        if roll < _P_BOOK:
            return self._book_move(rng)
        if roll < _P_TRADE:
            return self._trade_move(rng.randint(-self.vol_ticks, self.vol_ticks))
        if roll < _P_MARK:
            return self._mark_move(rng)
        return ()

    def _book_move(self, rng: random.Random) -> tuple[str, ...]:
        self.bid_size = rng.randint(1, 5000)
        self.ask_size = rng.randint(1, 5000)
        self.fields["bid1Size"] = self.qty_str(self.bid_size)
        self.fields["ask1Size"] = self.qty_str(self.ask_size)
        return ("bid1Size", "ask1Size")

    def _trade_move(self, delta_ticks: int) -> tuple[str, ...]:
        self.last = max(1, self.last + delta_ticks)
        self.volume += 1
        self.turnover += self.price(self.last) * self.inst.qty_step
        fields = self.fields
        changed = ["lastPrice", "bid1Price", "ask1Price", "volume24h", "turnover24h"]
        direction = _tick_direction(delta_ticks, fields["tickDirection"])
        if direction != fields["tickDirection"]:
            fields["tickDirection"] = direction
            changed.append("tickDirection")
        last = self.price_str(self.last)
        fields["lastPrice"] = last
        fields["bid1Price"] = last
        fields["ask1Price"] = self.price_str(self.last + 1)
        fields["volume24h"] = self.qty_str(self.volume)
        fields["turnover24h"] = str(self.turnover.quantize(Decimal("0.0001")))
        pcnt = self._pcnt()
        if pcnt != fields["price24hPcnt"]:
            fields["price24hPcnt"] = pcnt
            changed.append("price24hPcnt")
        if self.price(self.last) > Decimal(fields["highPrice24h"]):
            fields["highPrice24h"] = last
            changed.append("highPrice24h")
        if self.price(self.last) < Decimal(fields["lowPrice24h"]):
            fields["lowPrice24h"] = last
            changed.append("lowPrice24h")
        return tuple(changed)

    def _mark_move(self, rng: random.Random) -> tuple[str, ...]:
        half = max(1, self.vol_ticks // 2)
        self.mark = max(1, self.last + rng.randint(-half, half))
        self.index = max(1, self.mark + rng.randint(-half, half))
        self.fields["markPrice"] = self.price_str(self.mark)
        self.fields["indexPrice"] = self.price_str(self.index)
        self.fields["openInterestValue"] = self._oi_value()
        return ("markPrice", "indexPrice", "openInterestValue")

    def _trend_move(self, rng: random.Random) -> tuple[str, ...]:
        changed = self._trade_move(self.trend_ticks + rng.randint(-1, 1))
        self.mark = max(1, self.last)
        self.index = self.mark
        self.fields["markPrice"] = self.price_str(self.mark)
        self.fields["indexPrice"] = self.price_str(self.index)
        return (*changed, "markPrice", "indexPrice")

    def set_prices(
        self, mark: Decimal | None, last: Decimal | None, index: Decimal | None
    ) -> tuple[str, ...]:
        """Forces prices (already on tick); returns the names whose value changed."""
        before = self.fields.copy()
        changed: list[str] = []
        if last is not None:
            changed.extend(self._trade_move(int(last / self.inst.tick_size) - self.last))
        if mark is not None:
            self.mark = int(mark / self.inst.tick_size)
            self.fields["markPrice"] = self.price_str(self.mark)
            changed.append("markPrice")
        if index is not None:
            self.index = int(index / self.inst.tick_size)
            self.fields["indexPrice"] = self.price_str(self.index)
            changed.append("indexPrice")
        return self._really_changed(before, tuple(dict.fromkeys(changed)))


def _tick_direction(delta_ticks: int, previous: str) -> str:
    if delta_ticks > 0:
        return "PlusTick"
    if delta_ticks < 0:
        return "MinusTick"
    return "ZeroPlusTick" if previous in ("PlusTick", "ZeroPlusTick") else "ZeroMinusTick"


class PriceBook:
    """All symbols' tickers, advanced together by one seeded RNG (same seed -> same path)."""

    def __init__(self, instruments: tuple[Instrument, ...], seed: int, now_ms: int) -> None:
        self._rng = random.Random(seed)
        self._slot_of: list[int] | None = None  # see `random_phases`
        self.tickers: dict[str, TickerState] = {
            inst.symbol: TickerState(inst, self._rng, now_ms) for inst in instruments
        }

    def random_phases(self, slices: int, seed: int) -> None:
        """Puts each symbol in a slice drawn at random (from its own RNG), so symbols tick on
        independent phases instead of evenly spaced ones."""
        rng = random.Random(seed * 104729 + 3)
        self._slot_of = [rng.randrange(slices) for _ in self.tickers]

    def step(self, slice_index: int = 0, slices: int = 1) -> dict[str, tuple[str, ...]]:
        """One tick for every unpaused symbol of one slice (symbol i is in slice i % slices,
        or its random one, see `random_phases`): {symbol: changed field names} (only
        non-empty)."""
        changes: dict[str, tuple[str, ...]] = {}
        rng = self._rng
        slot_of = self._slot_of
        for i, (symbol, ticker) in enumerate(self.tickers.items()):
            slot = i % slices if slot_of is None else slot_of[i]
            if ticker.paused or slot != slice_index:
                continue
            changed = ticker.step(rng)
            if changed:
                ticker.cs += 1
                changes[symbol] = changed
        return changes

    def set_prices(
        self,
        symbol: str,
        *,
        mark: Decimal | None = None,
        last: Decimal | None = None,
        index: Decimal | None = None,
    ) -> tuple[str, ...]:
        ticker = self.tickers[symbol]
        for price in (mark, last, index):
            if price is not None and not ticker.inst.on_tick(price):
                raise ValueError(f"{symbol}: price {price} is not a positive multiple of tickSize")
        changed = ticker.set_prices(mark, last, index)
        if changed:
            ticker.cs += 1
        return changed

    def set_trend(self, symbol: str, ticks_per_step: int) -> None:
        self.tickers[symbol].trend_ticks = ticks_per_step

    def set_quiet(self, symbol: str, quiet: bool = True) -> None:
        """Trades and book moves only: the mark (and index) stay where they are."""
        self.tickers[symbol].quiet = quiet

    def pause(self, symbol: str | None = None, paused: bool = True) -> None:
        targets = self.tickers.values() if symbol is None else (self.tickers[symbol],)
        for ticker in targets:
            ticker.paused = paused

    def mark(self, symbol: str) -> Decimal:
        ticker = self.tickers[symbol]
        return ticker.price(ticker.mark)

    def last(self, symbol: str) -> Decimal:
        ticker = self.tickers[symbol]
        return ticker.price(ticker.last)

    def index(self, symbol: str) -> Decimal:
        ticker = self.tickers[symbol]
        return ticker.price(ticker.index)
