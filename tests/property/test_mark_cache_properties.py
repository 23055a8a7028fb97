"""MarkCache under generated ticker streams: the cs-ordered last mark wins, deltas merge."""

from __future__ import annotations

from decimal import Decimal

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from bybit_hybrid.protocol.domain import TickerUpdate
from bybit_hybrid.protocol.marks import MarkCache
from bybit_hybrid.wire.convert import ticker_from_wire
from bybit_hybrid.wire.decode import TickerMessage, decode_ws


def _delta(cs: int, mark: int | None) -> TickerUpdate:
    return TickerUpdate(
        symbol="BTCUSDT",
        is_snapshot=False,
        mark_price=Decimal(mark) if mark is not None else None,
        last_price=None,
        index_price=None,
        cs=cs,
        ts_ms=cs,
    )


SNAPSHOT = TickerUpdate("BTCUSDT", True, Decimal(100), Decimal(99), None, cs=0, ts_ms=0)
marks = st.none() | st.integers(90, 110)
# cs values may repeat: the mark moves with the index between trades.
deltas = st.lists(st.tuples(st.integers(1, 30), marks), max_size=30)


@settings(max_examples=300, deadline=None)
@given(frames=deltas)
def test_in_cs_order_the_final_mark_is_the_last_mark_bearing_frame(
    frames: list[tuple[int, int | None]],
) -> None:
    ordered = sorted(frames, key=lambda f: f[0])  # stable: equal cs keep arrival order
    cache = MarkCache()
    reported = [cache.apply(SNAPSHOT, 0.0)]
    reported += [cache.apply(_delta(cs, mark), 1.0) for cs, mark in ordered]
    bearing = [Decimal(mark) for _, mark in ordered if mark is not None]
    assert cache.mark("BTCUSDT") == (bearing[-1] if bearing else Decimal(100))
    state = cache.state("BTCUSDT")
    assert state is not None and state.last_price == Decimal(99)  # never in a delta: kept
    # `apply` reports exactly the mark changes, in order.
    changes = [m for m in reported if m is not None]
    expected: list[Decimal] = []
    for mark in [Decimal(100), *bearing]:
        if not expected or expected[-1] != mark:
            expected.append(mark)
    assert changes == expected


@settings(max_examples=300, deadline=None)
@given(data=st.data(), frames=deltas)
def test_shuffled_frames_never_apply_a_frame_older_than_one_applied(
    data: st.DataObject, frames: list[tuple[int, int | None]]
) -> None:
    arrival = data.draw(st.permutations(frames))
    cache = MarkCache()
    cache.apply(SNAPSHOT, 0.0)
    applied: list[tuple[int, int | None]] = []
    for cs, mark in arrival:
        cache.apply(_delta(cs, mark), 1.0)
        if cache.stats.frames == len(applied) + 2:
            applied.append((cs, mark))
    # What was applied is cs-ordered, and the mark is the last mark-bearing applied frame.
    assert [cs for cs, _ in applied] == sorted(cs for cs, _ in applied)
    bearing = [Decimal(mark) for _, mark in applied if mark is not None]
    assert cache.mark("BTCUSDT") == (bearing[-1] if bearing else Decimal(100))
    highest = max(frames, default=None, key=lambda f: f[0])
    unique_top = highest is not None and all(f == highest or f[0] < highest[0] for f in frames)
    if unique_top and highest is not None and highest[1] is not None:
        # A unique highest-cs frame carrying a mark always ends up the mark.
        assert cache.mark("BTCUSDT") == Decimal(highest[1])
    assert cache.stats.frames + cache.stats.stale_dropped == len(frames) + 1


# --- the wire fast path ------------------------------------------------------------------

prices = st.none() | st.sampled_from(["", "100", "100.0", "99.5", "101.25", "1e2", "0"])
frame_fields = st.fixed_dictionaries(
    {},
    optional={
        "markPrice": prices.filter(lambda p: p is not None),
        "lastPrice": prices.filter(lambda p: p is not None),
        "indexPrice": prices.filter(lambda p: p is not None),
    },
)
wire_frames = st.lists(
    st.tuples(
        st.sampled_from(["snapshot", "delta", "delta", "delta"]),
        st.none() | st.integers(1, 20),  # cs: absent on some frames
        st.integers(1, 40),  # ts
        frame_fields,
    ),
    max_size=25,
)


def _wire(kind: str, cs: int | None, ts: int, fields: dict[str, str]) -> bytes:
    frame: dict[str, object] = {"topic": "tickers.BTCUSDT", "type": kind, "ts": ts}
    if cs is not None:
        frame["cs"] = cs
    frame["data"] = {"symbol": "BTCUSDT", **fields}
    return msgspec.json.encode(frame)


@settings(max_examples=300, deadline=None)
@given(frames=wire_frames)
def test_apply_frame_merges_exactly_as_apply_of_the_converted_update(
    frames: list[tuple[str, int | None, int, dict[str, str]]],
) -> None:
    """`apply_frame` inlines the steady-state delta merge for speed; it must give what the
    general `ticker_from_wire` + `apply` path gives, frame by frame, stats included."""
    fast, general = MarkCache(), MarkCache()
    for i, (kind, cs, ts, fields) in enumerate(frames):
        message = decode_ws(_wire(kind, cs, ts, fields))
        assert isinstance(message, TickerMessage)
        now = float(i)
        assert fast.apply_frame(message, now) == general.apply(ticker_from_wire(message), now)
        assert fast.state("BTCUSDT") == general.state("BTCUSDT")
        assert fast.mark_frame_at("BTCUSDT") == general.mark_frame_at("BTCUSDT")
    assert fast.stats == general.stats
