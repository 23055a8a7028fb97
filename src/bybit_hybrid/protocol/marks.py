"""Per-symbol ticker state merged from `tickers.{symbol}` snapshots and deltas (BYBIT_V5 §5)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from decimal import Decimal

from bybit_hybrid.protocol.domain import TickerUpdate


@dataclass(frozen=True, slots=True)
class TickerState:
    """The merged view of one symbol's ticker; None means never received (or not in snapshot).

    `received_at` is when the last frame or seed was applied, so a delta that carries no mark
    still refreshes it: a missing field means "unchanged as of this frame" (F11).
    """

    symbol: str
    mark_price: Decimal | None
    last_price: Decimal | None
    index_price: Decimal | None
    cs: int | None
    ts_ms: int
    received_at: float


@dataclass(slots=True)
class MarkStats:
    """Counters for metrics and `get_stats()`."""

    frames: int = 0
    snapshots: int = 0
    deltas: int = 0
    deltas_before_snapshot: int = 0
    stale_dropped: int = 0
    mark_changes: int = 0
    seeds: int = 0
    seeds_ignored: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class MarkCache:
    """Merged ticker state per symbol; answers "what is the mark now, and how old is it"."""

    def __init__(self) -> None:
        self._states: dict[str, TickerState] = {}
        self.stats = MarkStats()

    def apply(self, update: TickerUpdate, now: float) -> Decimal | None:
        """Applies one WS ticker frame; returns the new mark only if the mark changed."""
        old = self._states.get(update.symbol)
        if not update.is_snapshot and _is_out_of_order(update.cs, old):
            self.stats.stale_dropped += 1
            return None
        self.stats.frames += 1
        if update.is_snapshot:
            # A snapshot replaces everything, even at a lower cs: Bybit resends one when its own
            # state was reset, so the old cs is no longer a valid reference.
            self.stats.snapshots += 1
            new = _from_snapshot(update, now)
        else:
            self.stats.deltas += 1
            if old is None:
                self.stats.deltas_before_snapshot += 1
            new = _merge_delta(old, update, now)
        self._states[update.symbol] = new
        return self._changed_mark(old, new)

    def seed(self, symbol: str, mark: Decimal, ts_ms: int, now: float) -> Decimal | None:
        """Seeds the mark from REST `market/tickers`; ignored if the cache holds a newer value.

        Keeps the cached cs, so ordering of later WS deltas is unaffected.
        """
        old = self._states.get(symbol)
        if old is not None and old.ts_ms >= ts_ms:
            self.stats.seeds_ignored += 1
            return None
        self.stats.seeds += 1
        if old is None:
            new = TickerState(symbol, mark, None, None, None, ts_ms, now)
        else:
            new = TickerState(symbol, mark, old.last_price, old.index_price, old.cs, ts_ms, now)
        self._states[symbol] = new
        return self._changed_mark(old, new)

    def mark(self, symbol: str) -> Decimal | None:
        state = self._states.get(symbol)
        return state.mark_price if state is not None else None

    def state(self, symbol: str) -> TickerState | None:
        return self._states.get(symbol)

    def age_s(self, symbol: str, now: float) -> float | None:
        """Seconds since the symbol's last applied frame or seed; None if never heard of."""
        state = self._states.get(symbol)
        return now - state.received_at if state is not None else None

    def last_ts_ms(self, symbol: str) -> int | None:
        state = self._states.get(symbol)
        return state.ts_ms if state is not None else None

    def last_cs(self, symbol: str) -> int | None:
        state = self._states.get(symbol)
        return state.cs if state is not None else None

    def drop(self, symbol: str) -> None:
        """Forgets a symbol whose ticker was unsubscribed, so a stale mark cannot be reused."""
        self._states.pop(symbol, None)

    def clear(self) -> None:
        self._states.clear()

    def symbols(self) -> set[str]:
        return set(self._states)

    def __len__(self) -> int:
        """Symbols with a known mark (the seed's `cached_prices`)."""
        return sum(1 for state in self._states.values() if state.mark_price is not None)

    def _changed_mark(self, old: TickerState | None, new: TickerState) -> Decimal | None:
        old_mark = old.mark_price if old is not None else None
        if new.mark_price is None or new.mark_price == old_mark:
            return None
        self.stats.mark_changes += 1
        return new.mark_price


def _is_out_of_order(cs: int | None, old: TickerState | None) -> bool:
    # Equal cs is not stale: the mark moves with the index even when no trade bumps cs.
    return cs is not None and old is not None and old.cs is not None and cs < old.cs


def _from_snapshot(update: TickerUpdate, now: float) -> TickerState:
    return TickerState(
        symbol=update.symbol,
        mark_price=update.mark_price,
        last_price=update.last_price,
        index_price=update.index_price,
        cs=update.cs,
        ts_ms=update.ts_ms,
        received_at=now,
    )


def _merge_delta(old: TickerState | None, update: TickerUpdate, now: float) -> TickerState:
    """A field missing from a delta is unchanged, not unknown (BYBIT_V5 §5.1, F11)."""
    if old is None:
        return _from_snapshot(update, now)
    return TickerState(
        symbol=update.symbol,
        mark_price=_newer(update.mark_price, old.mark_price),
        last_price=_newer(update.last_price, old.last_price),
        index_price=_newer(update.index_price, old.index_price),
        cs=update.cs if update.cs is not None else old.cs,
        ts_ms=max(update.ts_ms, old.ts_ms),
        received_at=now,
    )


def _newer(value: Decimal | None, cached: Decimal | None) -> Decimal | None:
    return value if value is not None else cached
