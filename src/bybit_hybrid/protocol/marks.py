"""Per-symbol ticker state merged from `tickers.{symbol}` snapshots and deltas (BYBIT_V5 §5).

The cache keeps one mutable record per symbol and updates it in place: a ticker frame is the
hottest input of the product (10 per second per symbol), so `apply_frame` reads the decoded
wire message directly and allocates nothing but the Decimals the frame carries. `state()`
hands out an immutable `TickerState` copy.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from decimal import Decimal, InvalidOperation

from bybit_hybrid.protocol.domain import TickerUpdate
from bybit_hybrid.wire.convert import decimal_or_none, plausible
from bybit_hybrid.wire.decode import TickerMessage
from bybit_hybrid.wire.errors import WireDecodeError
from bybit_hybrid.wire.messages import TickerData


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


class _Entry:
    """The mutable merged state of one symbol (see `TickerState` for the meaning)."""

    __slots__ = (
        "cs",
        "frame_at",
        "index_price",
        "last_price",
        "mark_frame_at",
        "mark_price",
        "received_at",
        "ts_ms",
    )

    def __init__(
        self,
        mark_price: Decimal | None,
        last_price: Decimal | None,
        index_price: Decimal | None,
        cs: int | None,
        ts_ms: int,
        *,
        received_at: float,
    ) -> None:
        self.mark_price = mark_price
        self.last_price = last_price
        self.index_price = index_price
        self.cs = cs
        self.ts_ms = ts_ms
        self.received_at = received_at
        # When a ticker frame last carried a mark (REST seeds and mark-less deltas do not count).
        self.mark_frame_at: float | None = None
        # When any ticker frame was last applied (REST seeds do not count): the topic's liveness.
        self.frame_at: float | None = None


class MarkCache:
    """Merged ticker state per symbol; answers "what is the mark now, and how old is it"."""

    def __init__(self) -> None:
        self._states: dict[str, _Entry] = {}
        self.stats = MarkStats()

    def apply(self, update: TickerUpdate, now: float) -> Decimal | None:
        """Applies one WS ticker frame; returns the new mark only if the mark changed."""
        return self._apply(
            update.symbol,
            update.is_snapshot,
            update.mark_price,
            update.last_price,
            update.index_price,
            cs=update.cs,
            ts_ms=update.ts_ms,
            now=now,
        )

    def apply_frame(self, message: TickerMessage, now: float) -> Decimal | None:
        """`apply` straight from the decoded wire message (the hot path: no `TickerUpdate`).

        Prices are converted (and checked) before anything changes, so a bad value raises
        `WireDecodeError` and leaves the cache as it was, as `ticker_from_wire` + `apply` do.
        A delta for a known symbol, the steady state, goes straight to `_delta`.
        """
        data = message.data
        mark_raw, last_raw, index_raw = data.markPrice, data.lastPrice, data.indexPrice
        try:
            mark = Decimal(mark_raw) if mark_raw else None
            last = Decimal(last_raw) if last_raw else None
            index = Decimal(index_raw) if index_raw else None
        except InvalidOperation:
            raise _bad_price(data) from None
        if (
            (mark is not None and not plausible(mark))
            or (last is not None and not plausible(last))
            or (index is not None and not plausible(index))
        ):
            raise _bad_price(data)
        entry = self._states.get(data.symbol)
        if entry is not None and message.type == "delta":
            return self._delta(entry, mark, last, index, message.cs, message.ts_ms, now)
        is_snapshot = message.type == "snapshot"
        return self._apply(
            data.symbol, is_snapshot, mark, last, index, cs=message.cs, ts_ms=message.ts_ms, now=now
        )

    def _apply(
        self,
        symbol: str,
        is_snapshot: bool,
        mark: Decimal | None,
        last: Decimal | None,
        index: Decimal | None,
        *,
        cs: int | None,
        ts_ms: int,
        now: float,
    ) -> Decimal | None:
        entry = self._states.get(symbol)
        if entry is None:
            return self._first(symbol, is_snapshot, mark, last, index, cs=cs, ts_ms=ts_ms, now=now)
        if not is_snapshot:
            return self._delta(entry, mark, last, index, cs, ts_ms, now)
        # A snapshot replaces everything, even at a lower cs: Bybit resends one when its own
        # state was reset, so the old cs is no longer a valid reference.
        self.stats.frames += 1
        self.stats.snapshots += 1
        old_mark = entry.mark_price
        entry.mark_price, entry.last_price, entry.index_price = mark, last, index
        entry.cs, entry.ts_ms = cs, ts_ms
        entry.received_at = entry.frame_at = now
        if mark is not None:
            entry.mark_frame_at = now
        return self._changed_mark(old_mark, mark)

    def _first(
        self,
        symbol: str,
        is_snapshot: bool,
        mark: Decimal | None,
        last: Decimal | None,
        index: Decimal | None,
        *,
        cs: int | None,
        ts_ms: int,
        now: float,
    ) -> Decimal | None:
        """The first frame of a symbol (a delta before any snapshot is counted as such)."""
        stats = self.stats
        stats.frames += 1
        if is_snapshot:
            stats.snapshots += 1
        else:
            stats.deltas += 1
            stats.deltas_before_snapshot += 1
        entry = self._states[symbol] = _Entry(mark, last, index, cs, ts_ms, received_at=now)
        entry.frame_at = now
        if mark is not None:
            entry.mark_frame_at = now
        return self._changed_mark(None, mark)

    def _delta(  # noqa: PLR0917  (the hottest call of the product: positional is cheaper)
        self,
        entry: _Entry,
        mark: Decimal | None,
        last: Decimal | None,
        index: Decimal | None,
        cs: int | None,
        ts_ms: int,
        now: float,
    ) -> Decimal | None:
        """Merges a delta into a known symbol; returns the mark only if it changed."""
        stats = self.stats
        if cs is not None:
            # Equal cs is not stale: the mark moves with the index even when no trade bumps cs.
            if entry.cs is not None and cs < entry.cs:
                stats.stale_dropped += 1
                return None
            entry.cs = cs
        stats.frames += 1
        stats.deltas += 1
        # A field missing from a delta is unchanged, not unknown (BYBIT_V5 §5.1, F11).
        if last is not None:
            entry.last_price = last
        if index is not None:
            entry.index_price = index
        if ts_ms > entry.ts_ms:  # noqa: PLR1730  (cheaper than a max() call, per frame)
            entry.ts_ms = ts_ms
        entry.received_at = entry.frame_at = now
        if mark is None:
            return None
        entry.mark_frame_at = now
        if mark == entry.mark_price:
            return None
        entry.mark_price = mark
        stats.mark_changes += 1
        return mark

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
            self._states[symbol] = _Entry(mark, None, None, None, ts_ms, received_at=now)
            return self._changed_mark(None, mark)
        old_mark = old.mark_price
        old.mark_price, old.ts_ms, old.received_at = mark, ts_ms, now
        return self._changed_mark(old_mark, mark)

    def mark(self, symbol: str) -> Decimal | None:
        state = self._states.get(symbol)
        return state.mark_price if state is not None else None

    def state(self, symbol: str) -> TickerState | None:
        entry = self._states.get(symbol)
        if entry is None:
            return None
        return TickerState(
            symbol,
            entry.mark_price,
            entry.last_price,
            entry.index_price,
            entry.cs,
            entry.ts_ms,
            entry.received_at,
        )

    def mark_frame_at(self, symbol: str) -> float | None:
        """When the symbol's last ticker frame carrying a mark price was applied (REST seeds and
        mark-less deltas do not count)."""
        entry = self._states.get(symbol)
        return entry.mark_frame_at if entry is not None else None

    def frame_at(self, symbol: str) -> float | None:
        """When the symbol's last ticker frame of any kind was applied (REST seeds do not count):
        Bybit's deltas omit unchanged fields, so a frame without a mark still proves the topic
        flows (issue 19 F4)."""
        entry = self._states.get(symbol)
        return entry.frame_at if entry is not None else None

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

    def _changed_mark(self, old_mark: Decimal | None, new_mark: Decimal | None) -> Decimal | None:
        if new_mark is None or new_mark == old_mark:
            return None
        self.stats.mark_changes += 1
        return new_mark


def _bad_price(data: TickerData) -> WireDecodeError:
    """The error for a ticker whose prices did not convert, naming the first bad field."""
    for field in ("markPrice", "lastPrice", "indexPrice"):
        try:
            decimal_or_none(getattr(data, field), field)
        except WireDecodeError as exc:
            return exc
    return WireDecodeError("ticker price is not a decimal", data.symbol)  # pragma: no cover
