"""The position book against a model of the exchange written from Bybit's rules (issue 19 F1).

The model, from BYBIT_V5.md (not from the book's code):

- §6.3/§6.4: positions are keyed by (symbol, positionIdx); BTCUSDT is one-way (idx 0, either
  side), ETHUSDT hedge (idx 1 Buy, idx 2 Sell). Each symbol has one trade sequence `seq` that
  only grows; a trade moves it, a stop-loss edit does not (it carries the seq of the last
  transaction) but moves the key's `updatedTime`. Every row shows its symbol's current seq.
- §6.1: the private stream pushes each change in order while it is up; while it is down the
  pushes are lost (nothing is replayed on reconnect).
- §7.2: `position/list?settleCoin=` lists open keys only; `?symbol=` lists every key of the
  symbol, flat ones included. The endpoint may lag: an answer shows the exchange as it was at
  some moment up to `lag` steps before the request (or any moment up to the answer), and
  answers arrive in any order, or never.

Properties:

1. Whatever the interleaving, once the faults stop, one fresh complete answer and the
   confirmations the book asks for (answered fresh) leave the book equal to the exchange.
2. With at most one lagging answer, the book never closes a position the exchange still holds:
   one answer is never enough (a position is told apart by its entry, unique per trade here).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from decimal import Decimal

from hypothesis import event as hypothesis_event
from hypothesis import example, given, settings
from hypothesis import strategies as st

from bybit_hybrid.protocol.domain import PositionKey, PositionSnapshot, Side, Source
from bybit_hybrid.protocol.events import PositionClosed, PositionEvent
from bybit_hybrid.protocol.positions import PositionBook, confirmation_requests
from tests.unit.protocol.builders import pos

KEYS = (PositionKey("BTCUSDT", 0), PositionKey("ETHUSDT", 1), PositionKey("ETHUSDT", 2))
SYMBOL_KEYS = {"BTCUSDT": KEYS[:1], "ETHUSDT": KEYS[1:]}
MS_PER_STEP = 10


@dataclass(frozen=True)
class KeyState:
    side: Side | None = None
    size: int = 0
    entry: int | None = None
    stop: int | None = None
    updated_ms: int = 0


@dataclass
class Exchange:
    """The model exchange; `history[t]` is its state after step t, for lagging answers."""

    keys: dict[PositionKey, KeyState] = field(
        default_factory=lambda: dict.fromkeys(KEYS, KeyState())
    )
    seq: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SYMBOL_KEYS, 0))
    history: list[tuple[dict[PositionKey, KeyState], dict[str, int]]] = field(default_factory=list)
    trades: int = 0

    def trade(self, key: PositionKey, size: int, side: Side, t: int) -> None:
        self.seq[key.symbol] += 1
        self.trades += 1
        side = {1: Side.BUY, 2: Side.SELL}.get(key.idx, side)
        old = self.keys[key]
        if size == 0:
            self.keys[key] = KeyState(updated_ms=t * MS_PER_STEP)
        else:
            # A unique entry per trade tells one position (version) from the next.
            stop = old.stop if old.size else None
            self.keys[key] = KeyState(side, size, 1000 + self.trades, stop, t * MS_PER_STEP)

    def edit(self, key: PositionKey, stop: int, t: int) -> bool:
        old = self.keys[key]
        if old.size == 0 or old.stop == stop:
            return False
        self.keys[key] = replace(old, stop=stop, updated_ms=t * MS_PER_STEP)
        return True

    def record(self) -> None:
        self.history.append((dict(self.keys), dict(self.seq)))

    def row(self, key: PositionKey, at: int, source: Source, ts_ms: int) -> PositionSnapshot:
        keys, seqs = self.history[at]
        state = keys[key]
        snapshot = pos(
            symbol=key.symbol,
            idx=key.idx,
            side=state.side,
            size=str(state.size),
            entry=None if state.entry is None else str(state.entry),
            seq=seqs[key.symbol],
            updated_ms=state.updated_ms,
            stop_loss=None if state.stop is None else str(state.stop),
        )
        return replace(snapshot, source=source, exchange_ts_ms=ts_ms)

    def listing(self, at: int, symbol: str | None, ts_ms: int) -> list[PositionSnapshot]:
        if symbol is not None:  # every key of the symbol, flat ones too
            return [self.row(k, at, Source.REST, ts_ms) for k in SYMBOL_KEYS[symbol]]
        keys, _ = self.history[at]
        return [self.row(k, at, Source.REST, ts_ms) for k in KEYS if keys[k].size > 0]


@dataclass(frozen=True)
class Request:
    sent_at: float
    sent_step: int
    symbol: str | None  # None: a complete listing


trades = st.tuples(
    st.just("trade"), st.sampled_from(KEYS), st.integers(0, 2), st.sampled_from(Side)
)
lists = st.tuples(st.just("list"))
# Deliver in-flight answer number `pick` (any order), showing the exchange `shift` steps from
# when it was sent (negative: a lagging answer).
delivers = st.tuples(st.just("deliver"), st.integers(0, 7), st.integers(-4, 1))
actions = st.one_of(
    *[trades] * 3,
    st.tuples(st.just("edit"), st.sampled_from(KEYS), st.integers(80, 82)),
    st.tuples(st.just("private"), st.booleans()),
    *[lists] * 2,
    *[delivers] * 3,
    st.tuples(st.just("lose"), st.integers(0, 7)),  # an answer that never comes
)


class Run:
    """Drives the book with the model's pushes and answers, one step per action."""

    def __init__(self, max_lagging: int | None) -> None:
        self.exchange = Exchange()
        self.book = PositionBook()
        self.private_up = True
        self.in_flight: list[Request] = []
        self.step = 0
        self.max_lagging = max_lagging
        self.lagging = 0
        self.exchange.record()

    def act(self, action: tuple[object, ...]) -> None:
        self.step += 1
        kind = action[0]
        if kind == "trade":
            key, size, side = action[1], action[2], action[3]
            assert isinstance(key, PositionKey) and isinstance(size, int)
            assert isinstance(side, Side)
            self.exchange.trade(key, size, side, self.step)
            self.exchange.record()
            self._push(key)
            return
        if kind == "edit":
            key, stop = action[1], action[2]
            assert isinstance(key, PositionKey) and isinstance(stop, int)
            changed = self.exchange.edit(key, stop, self.step)
            self.exchange.record()
            if changed:
                self._push(key)
            return
        self.exchange.record()
        if kind == "private":
            self.private_up = bool(action[1])
        elif kind == "list":
            self.in_flight.append(Request(float(self.step), self.step, None))
        elif kind == "lose" and self.in_flight:
            pick = action[1]
            assert isinstance(pick, int)
            self.in_flight.pop(pick % len(self.in_flight))
        elif kind == "deliver" and self.in_flight:
            pick, shift = action[1], action[2]
            assert isinstance(pick, int) and isinstance(shift, int)
            request = self.in_flight.pop(pick % len(self.in_flight))
            if shift < 0:
                if self.max_lagging is not None and self.lagging >= self.max_lagging:
                    shift = 0
                else:
                    self.lagging += 1
            at = min(max(0, request.sent_step + shift), self.step)
            self.answer(request, at)

    def answer(self, request: Request, at: int) -> None:
        """The answer to `request`, showing the exchange after step `at`."""
        now = float(self.step)
        ts_ms = self.step * MS_PER_STEP
        rows = self.exchange.listing(at, request.symbol, ts_ms)
        if request.symbol is None:
            events = self.book.reconcile(rows, now, requested_at=request.sent_at)
        else:
            events = self.book.confirm(request.symbol, rows, now, requested_at=request.sent_at)
        self.check(events)
        for symbol in confirmation_requests(self.book.take_confirmations()):
            # Sent right after the answer was merged, before the next step.
            self.in_flight.append(Request(now + 0.5, self.step, symbol))

    def check(self, events: list[PositionEvent]) -> None:
        """Overridden by the safety property; the liveness one checks only the end."""

    def _push(self, key: PositionKey) -> None:
        if self.private_up:
            at = len(self.exchange.history) - 1
            row = self.exchange.row(key, at, Source.POSITION, self.step * MS_PER_STEP)
            self.check(self.book.apply_position(row, float(self.step)))

    def settle(self) -> None:
        """The faults stop: what is in flight is lost, one fresh listing is answered, then
        every confirmation it causes, fresh."""
        self.in_flight.clear()
        self.step += 1
        self.exchange.record()
        self.in_flight.append(Request(float(self.step), self.step, None))
        for _ in range(len(SYMBOL_KEYS) + 1):  # the listing, then one confirmation a symbol
            if not self.in_flight:
                return
            self.step += 1
            self.exchange.record()
            self.answer(self.in_flight.pop(0), self.step)
        assert not self.in_flight, f"confirmations never settle: {self.in_flight}"

    def assert_book_equals_exchange(self) -> None:
        held = {k: s for k, s in self.exchange.keys.items() if s.size > 0}
        assert set(self.book.open_keys()) == set(held)
        for key, state in held.items():
            view = self.book.get(key)
            assert view is not None
            assert (view.side, view.size, view.entry_price, view.stop_loss) == (
                state.side,
                Decimal(state.size),
                Decimal(state.entry) if state.entry is not None else None,
                Decimal(state.stop) if state.stop is not None else None,
            ), key


class SafeRun(Run):
    def check(self, events: list[PositionEvent]) -> None:
        for event in events:
            if not isinstance(event, PositionClosed):
                continue
            state = self.exchange.keys[event.key]
            still_held = state.size > 0 and Decimal(state.entry or 0) == event.view.entry_price
            assert not still_held, f"closed {event.key} which the exchange still holds"


scripts = st.lists(actions, min_size=20, max_size=80)


# Paths random scripts reach rarely, pinned: the confirmation lags too and withdraws the miss;
# a second listing confirms a real close while the confirmation is lost; a lagging listing
# re-opens a key closed on absence and a fresh one closes it again.
WITHDRAWN = [
    ("trade", KEYS[1], 1, Side.BUY),
    ("list",),
    ("deliver", 0, -2),
    ("deliver", 0, -4),
]
SECOND_MISS = [
    ("trade", KEYS[0], 1, Side.BUY),
    ("private", False),
    ("trade", KEYS[0], 0, Side.BUY),
    ("list",),
    ("deliver", 0, 0),
    ("lose", 0),
    ("list",),
    ("deliver", 0, 0),
]
REOPENED = [*SECOND_MISS, ("list",), ("deliver", 0, -8)]


@settings(max_examples=400, deadline=None)
@given(script=scripts)
@example(script=WITHDRAWN)
@example(script=SECOND_MISS)
@example(script=REOPENED)
def test_after_one_fresh_answer_the_book_equals_the_exchange(
    script: list[tuple[object, ...]],
) -> None:
    run = Run(max_lagging=None)
    for action in script:
        run.act(action)
    run.settle()
    run.assert_book_equals_exchange()
    stats = run.book.stats
    # What the runs exercised (--hypothesis-show-statistics).
    for name in ("reconcile_misses", "reconcile_misses_withdrawn", "reconcile_closes", "closes"):
        if getattr(stats, name):
            hypothesis_event(name)


@settings(max_examples=400, deadline=None)
@given(script=scripts)
@example(script=WITHDRAWN)
@example(script=SECOND_MISS)
def test_one_lagging_answer_never_closes_a_held_position(
    script: list[tuple[object, ...]],
) -> None:
    run = SafeRun(max_lagging=1)
    for action in script:
        run.act(action)
    run.settle()
    run.assert_book_equals_exchange()
