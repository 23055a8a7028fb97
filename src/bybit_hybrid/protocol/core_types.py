"""What `HybridCore` takes and reports besides position events: config, REST needs, reports.

Kept apart from the core's logic (`protocol/hybrid.py` re-exports every name) so a shell or a
consumer can import the core's vocabulary without its machinery.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Final

from bybit_hybrid.protocol.alerts import AlertEvent
from bybit_hybrid.protocol.backoff import BackoffPolicy
from bybit_hybrid.protocol.compare import Divergence
from bybit_hybrid.protocol.connects import ConnectBudgetConfig
from bybit_hybrid.protocol.events import PositionEvent
from bybit_hybrid.protocol.failover import FailoverSwitched
from bybit_hybrid.protocol.session import SessionConfig, SessionEvent
from bybit_hybrid.protocol.shards import PUBLIC_ARGS_LIMIT_CHARS
from bybit_hybrid.protocol.subscriptions import SubscriptionConfig

PRIVATE: Final = "private"
TICKER_PREFIX: Final = "tickers."
POSITION_TOPIC: Final = "position"


def ticker_topic(symbol: str) -> str:
    return TICKER_PREFIX + symbol


@dataclass(frozen=True, slots=True)
class HybridConfig:
    session: SessionConfig = field(default_factory=SessionConfig)
    subscriptions: SubscriptionConfig = field(default_factory=SubscriptionConfig)
    max_args_chars: int = PUBLIC_ARGS_LIMIT_CHARS
    # REST retries after a failed bootstrap/reconcile/seed call.
    rest_backoff: BackoffPolicy = field(default_factory=BackoffPolicy)
    # None: every symbol is streamed. Otherwise only symbols it accepts (cutover).
    stream_symbol: Callable[[str], bool] | None = None
    # Every socket's connection attempts together (protocol/connects.py).
    connect_budget: ConnectBudgetConfig = field(default_factory=ConnectBudgetConfig)


# --- REST requests the core wants, and events it reports besides position events -------------


@dataclass(frozen=True, slots=True)
class FetchPositions:
    """Every open position (all settle coins, all pages), or with `symbol` that symbol's rows,
    flat ones included; `reason` is bootstrap, reconnect or confirm (keys a listing missed,
    `PositionBook.take_confirmations`)."""

    request_id: int
    reason: str
    symbol: str | None = None


@dataclass(frozen=True, slots=True)
class FetchTickers:
    """Current tickers to seed marks; `symbols` None means all linear symbols."""

    request_id: int
    symbols: tuple[str, ...] | None


RestRequest = FetchPositions | FetchTickers


@dataclass(frozen=True, slots=True)
class BadFrame:
    """A frame that did not decode or convert; counted, reported, and otherwise ignored."""

    connection: str
    error: str


@dataclass(frozen=True, slots=True)
class Reconciled:
    """A REST position snapshot was merged; `events` says how many position events it caused."""

    reason: str
    positions: int
    events: int


@dataclass(frozen=True, slots=True)
class RestFailed:
    """A REST call failed; it is retried after `retry_in_s`. `permanent` marks failures that
    retrying cannot fix (rejected keys), so a shell may stop instead of waiting."""

    request: RestRequest
    error: str
    retry_in_s: float
    permanent: bool = False


# The rollout events (failover switches, alerts, parallel-run divergences) are raised by the
# rollout shells, not by this core; they share the union so every listener has one type.
CoreEvent = (
    PositionEvent
    | SessionEvent
    | BadFrame
    | Reconciled
    | RestFailed
    | FailoverSwitched
    | AlertEvent
    | Divergence
)


@dataclass
class CoreStats:
    """Counters kept for `get_stats()`; names follow the seed where it had one."""

    position_updates: int = 0
    ticker_updates: int = 0
    combined_events: int = 0
    subscriptions: int = 0
    unsubscriptions: int = 0
    reconnections: int = 0
    bad_frames: Counter[str] = field(default_factory=Counter)
    ignored_frames: int = 0
    rest_failures: int = 0
    unstreamed_rows: int = 0


def unseeded(symbols: Iterable[str], pending: Iterable[RestRequest]) -> tuple[str, ...]:
    """`symbols` (in order, once each) that no pending ticker request already fetches; none
    at all while a request for every ticker is pending."""
    covered: set[str] = set()
    for request in pending:
        if isinstance(request, FetchTickers):
            if request.symbols is None:
                return ()
            covered.update(request.symbols)
    return tuple(dict.fromkeys(s for s in symbols if s not in covered))
