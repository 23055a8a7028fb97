"""Parallel-run comparison of the hybrid stream with REST: marks, positions, who saw a change first.

In `parallel` mode REST drives the events and the hybrid stream runs beside it. The shell
feeds this comparator from both and reads `summary()`:

- marks (issue 19 F5): like with like. The hybrid side records, per symbol, each mark it
  saw with its exchange timestamp (`on_hybrid_mark`); each REST sample (`on_rest_mark`, with
  the exchange time of its answer) is compared with the hybrid mark in effect at that exchange
  time: the last one stamped at or before it (a sample older than the kept history is
  skipped and counted). Only a sample newer than the symbol's last one counts: the REST book
  keeps its mark when a tickers answer is no newer than the one it holds, and the same reading
  handed over at several polls is one sample, not persistence (counted as repeated). A gap
  above `warning_pct` is at warning level, above `critical_pct` critical; it becomes a
  `Divergence` only when it persists for `persist_samples` consecutive REST samples of that
  symbol (severity: the lowest of the run), reported once per incident. One sample can differ
  by the market moving inside one round trip or a frame still in flight; a feed that is really
  wrong stays wrong sample after sample;
- positions: after each REST poll the two books are compared key by key; a key held by one
  side only, or with a different side/size/entry, that persists past `grace_s` (REST lags by
  up to one poll) is a divergence, reported once per incident;
- lead: each lifecycle change (key, status, side, size) is stamped when each feed first shows
  it; the feed that was first and by how much is tallied.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum

from bybit_hybrid.protocol.alerts import Severity
from bybit_hybrid.protocol.domain import PositionKey
from bybit_hybrid.protocol.events import MarkUpdated, PositionEvent, PositionView

_HUNDRED = Decimal(100)


class Feed(Enum):
    REST = "rest"
    HYBRID = "hybrid"

    @property
    def other(self) -> Feed:
        return Feed.HYBRID if self is Feed.REST else Feed.REST


@dataclass(frozen=True, slots=True)
class CompareConfig:
    warning_pct: Decimal = Decimal("0.1")
    critical_pct: Decimal = Decimal("1")
    # Consecutive REST samples above a level before it is a divergence (a choice: three polls,
    # 4.5 s at the fast poll, long enough that one answer's round trip cannot do it).
    persist_samples: int = 3
    # Exchange time of hybrid marks kept to answer "which mark was in effect at T".
    history_s: float = 30.0
    grace_s: float = 5.0
    match_window_s: float = 30.0

    def __post_init__(self) -> None:
        if self.persist_samples < 1:
            raise ValueError("persist_samples must be at least 1")


@dataclass(frozen=True, slots=True)
class Divergence:
    """The two feeds disagree; `kind` is mark, position or one_sided."""

    kind: str
    subject: str
    severity: Severity
    detail: str
    pct: Decimal | None
    at: float


_Signature = tuple[PositionKey, str, str | None, Decimal]
_Shape = tuple[str | None, Decimal, Decimal | None]


@dataclass(slots=True)
class _Lead:
    firsts: int = 0
    total_ms: float = 0.0
    max_ms: float = 0.0

    def add(self, lead_ms: float) -> None:
        self.firsts += 1
        self.total_ms += lead_ms
        self.max_ms = max(self.max_ms, lead_ms)


@dataclass(slots=True)
class _Run:
    """Consecutive REST samples of one symbol above the warning level."""

    samples: int = 0
    critical: bool = True
    reported: bool = False


@dataclass(slots=True)
class CompareStats:
    mark_comparisons: int = 0
    mark_warnings: int = 0
    mark_criticals: int = 0
    skipped_old_reference: int = 0
    repeated_samples: int = 0
    max_mark_divergence_pct: Decimal = Decimal(0)
    position_checks: int = 0
    position_mismatches: int = 0
    one_sided: dict[Feed, int] = field(default_factory=lambda: {f: 0 for f in Feed})
    unmatched_changes: dict[Feed, int] = field(default_factory=lambda: {f: 0 for f in Feed})
    leads: dict[Feed, _Lead] = field(default_factory=lambda: {f: _Lead() for f in Feed})
    worst_by_symbol: dict[str, Decimal] = field(default_factory=dict)


class Comparator:
    """See the module docstring."""

    def __init__(self, config: CompareConfig | None = None) -> None:
        self.config = config or CompareConfig()
        self.stats = CompareStats()
        self._hybrid_marks: dict[str, deque[tuple[int, Decimal]]] = {}
        self._runs: dict[str, _Run] = {}
        self._last_rest_ts_ms: dict[str, int] = {}
        self._pending: dict[_Signature, tuple[Feed, float]] = {}
        self._suspect_since: dict[PositionKey, float] = {}
        self._reported: set[PositionKey] = set()

    # --- marks ------------------------------------------------------------------------------

    def on_hybrid_mark(self, symbol: str, hybrid_mark: Decimal, ts_ms: int) -> None:
        """A mark the hybrid stream applied, stamped with its frame's exchange time."""
        history = self._hybrid_marks.setdefault(symbol, deque())
        if history and ts_ms < history[-1][0]:
            return  # an older frame never replaces a newer mark
        history.append((ts_ms, hybrid_mark))
        horizon_ms = ts_ms - self.config.history_s * 1000
        # Keep the newest mark older than the horizon: it is still in effect up to the next.
        while len(history) > 1 and history[1][0] <= horizon_ms:
            history.popleft()

    def on_rest_mark(
        self, symbol: str, rest_mark: Decimal, rest_ts_ms: int, now: float
    ) -> Divergence | None:
        """A REST sample stamped `rest_ts_ms` (exchange time), against the hybrid mark in
        effect then; a divergence once the gap persisted (see the module docstring)."""
        last_ts_ms = self._last_rest_ts_ms.get(symbol)
        if last_ts_ms is not None and rest_ts_ms <= last_ts_ms:
            self.stats.repeated_samples += 1
            return None
        self._last_rest_ts_ms[symbol] = rest_ts_ms
        hybrid_mark = self._mark_at(symbol, rest_ts_ms)
        if hybrid_mark is None:
            self.stats.skipped_old_reference += 1
            return None
        level, pct = self._compare_marks(symbol, rest_mark, hybrid_mark)
        run = self._runs.get(symbol)
        if level is None:
            self._runs.pop(symbol, None)
            return None
        if run is None:
            run = self._runs[symbol] = _Run()
        run.samples += 1
        critical = level is Severity.CRITICAL
        run.critical = critical if run.samples == 1 else run.critical and critical
        if run.reported or run.samples < self.config.persist_samples:
            return None
        run.reported = True
        severity = Severity.CRITICAL if run.critical else Severity.WARNING
        if severity is Severity.CRITICAL:
            self.stats.mark_criticals += 1
        else:
            self.stats.mark_warnings += 1
        detail = f"hybrid mark {hybrid_mark} vs rest {rest_mark} ({run.samples} samples in a row)"
        return Divergence("mark", symbol, severity, detail, _round_pct(pct), now)

    def _mark_at(self, symbol: str, ts_ms: int) -> Decimal | None:
        """The hybrid mark in effect at exchange time `ts_ms`; None: no mark that old."""
        found = None
        for stamped_ms, mark in reversed(self._hybrid_marks.get(symbol, ())):
            if stamped_ms <= ts_ms:
                found = mark
                break
        return found

    def _compare_marks(
        self, symbol: str, rest_mark: Decimal, hybrid_mark: Decimal
    ) -> tuple[Severity | None, Decimal]:
        stats = self.stats
        stats.mark_comparisons += 1
        if rest_mark <= 0:
            return None, Decimal(0)
        pct = abs(hybrid_mark - rest_mark) / rest_mark * _HUNDRED
        stats.max_mark_divergence_pct = max(stats.max_mark_divergence_pct, pct)
        stats.worst_by_symbol[symbol] = max(stats.worst_by_symbol.get(symbol, pct), pct)
        if pct > self.config.critical_pct:
            return Severity.CRITICAL, pct
        if pct > self.config.warning_pct:
            return Severity.WARNING, pct
        return None, pct

    # --- lifecycle lead ---------------------------------------------------------------------

    def on_position_event(self, feed: Feed, event: PositionEvent, now: float) -> None:
        """Stamps an open, change or close; a mark revaluation is no lifecycle change."""
        if isinstance(event, MarkUpdated):
            return
        self._expire(now)
        view = event.view
        signature = (view.key, view.status, view.side.value if view.side else None, view.size)
        seen = self._pending.get(signature)
        if seen is None:
            self._pending[signature] = (feed, now)
            return
        first, at = seen
        if first is feed:
            return
        del self._pending[signature]
        self.stats.leads[first].add((now - at) * 1000)

    def _expire(self, now: float) -> None:
        horizon = now - self.config.match_window_s
        for signature, (feed, at) in list(self._pending.items()):
            if at < horizon:
                del self._pending[signature]
                self.stats.unmatched_changes[feed] += 1

    # --- books ------------------------------------------------------------------------------

    def check_books(
        self,
        now: float,
        rest: Mapping[PositionKey, PositionView],
        hybrid: Mapping[PositionKey, PositionView],
    ) -> list[Divergence]:
        """Both books key by key; disagreements older than `grace_s` are reported once."""
        self.stats.position_checks += 1
        found: list[Divergence] = []
        disagreeing = {
            k for k in rest.keys() | hybrid.keys() if _shape(rest, k) != _shape(hybrid, k)
        }
        for key in list(self._suspect_since):
            if key not in disagreeing:
                del self._suspect_since[key]
                self._reported.discard(key)
        for key in sorted(disagreeing):
            since = self._suspect_since.setdefault(key, now)
            if now - since < self.config.grace_s or key in self._reported:
                continue
            self._reported.add(key)
            found.append(self._position_divergence(key, rest, hybrid, now))
        return found

    def _position_divergence(
        self,
        key: PositionKey,
        rest: Mapping[PositionKey, PositionView],
        hybrid: Mapping[PositionKey, PositionView],
        now: float,
    ) -> Divergence:
        if key in rest and key in hybrid:
            self.stats.position_mismatches += 1
            detail = f"hybrid {_shape(hybrid, key)} vs rest {_shape(rest, key)}"
            return Divergence("position", str(key), Severity.CRITICAL, detail, None, now)
        feed = Feed.REST if key in rest else Feed.HYBRID
        self.stats.one_sided[feed] += 1
        detail = f"only {feed.value} holds it"
        return Divergence("one_sided", str(key), Severity.CRITICAL, detail, None, now)

    # --- output -----------------------------------------------------------------------------

    def summary(self) -> dict[str, object]:
        s = self.stats
        return {
            "mark_comparisons": s.mark_comparisons,
            "mark_warnings": s.mark_warnings,
            "mark_criticals": s.mark_criticals,
            "skipped_old_reference": s.skipped_old_reference,
            "repeated_samples": s.repeated_samples,
            "max_mark_divergence_pct": str(_round_pct(s.max_mark_divergence_pct)),
            "worst_by_symbol": {
                k: str(_round_pct(v)) for k, v in sorted(s.worst_by_symbol.items())
            },
            "position_checks": s.position_checks,
            "position_mismatches": s.position_mismatches,
            "one_sided": {f.value: n for f, n in s.one_sided.items()},
            "first_seen": {
                f.value: {
                    "changes": lead.firsts,
                    "mean_lead_ms": round(lead.total_ms / lead.firsts, 1) if lead.firsts else None,
                    "max_lead_ms": round(lead.max_ms, 1),
                }
                for f, lead in s.leads.items()
            },
            "unmatched_changes": {f.value: n for f, n in s.unmatched_changes.items()},
        }

    @property
    def criticals(self) -> int:
        s = self.stats
        return s.mark_criticals + s.position_mismatches + sum(s.one_sided.values())


def _shape(book: Mapping[PositionKey, PositionView], key: PositionKey) -> _Shape | None:
    view = book.get(key)
    if view is None:
        return None
    return (view.side.value if view.side else None, view.size, view.entry_price)


def _round_pct(pct: Decimal) -> Decimal:
    return pct.quantize(Decimal("0.0001"))
