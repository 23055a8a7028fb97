"""PositionBook under reordering: the newest push wins, and opens minus closes is the book."""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from bybit_hybrid.protocol.domain import PositionKey, PositionSnapshot, Side, Source
from bybit_hybrid.protocol.events import PositionEvent
from bybit_hybrid.protocol.positions import WATCHED_FIELDS, PositionBook
from tests.unit.protocol.builders import pos


@dataclass(frozen=True)
class Row:
    """A generated push; kept small so shrunk examples stay readable."""

    seq: int
    updated_ms: int
    side: Side
    size: int  # 0 = flat
    entry: int
    stop_loss: int | None

    def snapshot(
        self, symbol: str = "BTCUSDT", idx: int = 0, side: Side | None = None
    ) -> PositionSnapshot:
        return pos(
            symbol=symbol,
            idx=idx,
            side=side or self.side,
            size=str(self.size),
            entry=str(self.entry),
            seq=self.seq,
            updated_ms=self.updated_ms,
            stop_loss=str(self.stop_loss) if self.stop_loss is not None else None,
        )


rows = st.builds(
    Row,
    seq=st.integers(-1, 6),
    updated_ms=st.integers(0, 6),
    side=st.sampled_from(Side),
    size=st.integers(0, 3),
    entry=st.integers(90, 92),
    stop_loss=st.none() | st.integers(80, 81),
)
# Unique (seq, updatedTime): two different pushes with identical stamps have no defined order.
unique_rows = st.lists(rows, min_size=1, max_size=25, unique_by=lambda r: (r.seq, r.updated_ms))


@settings(max_examples=300, deadline=None)
@given(data=st.data(), pushes=unique_rows)
def test_any_arrival_order_ends_in_the_newest_push(data: st.DataObject, pushes: list[Row]) -> None:
    arrival = data.draw(st.permutations(pushes))
    book = PositionBook()
    for now, row in enumerate(arrival):
        book.apply_position(row.snapshot(), float(now))
    newest = max(pushes, key=lambda r: (r.seq, r.updated_ms)).snapshot()
    view = book.get(PositionKey("BTCUSDT", 0))
    if not newest.is_open:
        assert view is None
        return
    assert view is not None
    for name in WATCHED_FIELDS:
        assert getattr(view, name) == getattr(newest, name), name


keys = st.sampled_from(
    [PositionKey("BTCUSDT", 0), PositionKey("ETHUSDT", 1), PositionKey("ETHUSDT", 2)]
)
actions = st.one_of(
    st.tuples(st.just("push"), keys, rows),
    st.tuples(st.just("mark"), st.sampled_from(["BTCUSDT", "ETHUSDT"]), st.integers(85, 95)),
    # (rows listed, complete, how many steps before now the request was sent)
    st.tuples(
        st.just("reconcile"),
        st.lists(st.tuples(keys, rows), max_size=3),
        st.booleans(),
        st.integers(0, 3),
    ),
)


def _snapshot(key: PositionKey, row: Row, source: Source = Source.POSITION) -> PositionSnapshot:
    # Hedge slots hold one side each (idx 1 Buy, 2 Sell): only idx 0 can flip.
    side = {0: row.side, 1: Side.BUY, 2: Side.SELL}[key.idx]
    return replace(row.snapshot(key.symbol, key.idx, side), source=source)


def _run(book: PositionBook, action: tuple[object, ...], now: float) -> list[PositionEvent]:
    kind = action[0]
    if kind == "push":
        key, row = action[1], action[2]
        assert isinstance(key, PositionKey) and isinstance(row, Row)
        return book.apply_position(_snapshot(key, row), now)
    if kind == "mark":
        symbol, mark = action[1], action[2]
        assert isinstance(symbol, str) and isinstance(mark, int)
        return book.apply_mark(symbol, Decimal(mark), ts_ms=int(now), cs=int(now), now=now)
    listed, complete, lag = action[1], action[2], action[3]
    assert isinstance(listed, list) and isinstance(complete, bool) and isinstance(lag, int)
    snapshots = [_snapshot(key, row, Source.REST) for key, row in listed]
    return book.reconcile(snapshots, now, complete=complete, requested_at=now - lag - 0.5)


@settings(max_examples=300, deadline=None)
@given(script=st.lists(actions, max_size=40))
def test_opens_minus_closes_is_the_number_of_open_positions(
    script: list[tuple[object, ...]],
) -> None:
    book = PositionBook()
    opens = closes = 0
    is_open: dict[PositionKey, bool] = {}
    for now, action in enumerate(script):
        for event in _run(book, action, float(now)):
            was_open = is_open.get(event.key, False)
            # Per key the lifecycle alternates: open, then changes/marks, then close.
            if event.kind == "opened":
                assert not was_open
                opens += 1
                is_open[event.key] = True
            elif event.kind == "closed":
                assert was_open
                assert event.view.size == 0 and event.view.side is not None
                closes += 1
                is_open[event.key] = False
            else:
                assert was_open
        assert opens - closes == len(book) == sum(book.symbol_refcounts().values())
        assert (book.stats.opens, book.stats.closes) == (opens, closes)
