"""The core's seam for demand and marks that come from elsewhere (a bus hub or worker)."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from bybit_hybrid.protocol.domain import Source
from bybit_hybrid.protocol.session import ConnectionSession, SessionEvent, SessionState
from bybit_hybrid.protocol.shards import PublicShards, ShardAction, UnassignTopic
from bybit_hybrid.protocol.ticker_demand import demand_change

if TYPE_CHECKING:
    from bybit_hybrid.protocol.rest_needs import RestNeeds


class ExternalFeedSeam:
    """Mixed into `HybridCore`: the few moves a hub (ticker demand set from outside, no private
    socket) and a worker (marks from the bus, its own public socket only as a fallback) need,
    so `bus/` never touches the core's internals. The attributes and methods below are the
    core's own, declared here for the type checker."""

    _shards: PublicShards
    _sessions: dict[str, ConnectionSession]
    _retiring: set[str]
    _ticker_refs: dict[str, int]
    rest: RestNeeds
    # False: open positions subscribe no ticker; their marks come from elsewhere (a bus).
    own_tickers: bool = True

    if TYPE_CHECKING:

        def _collect(self, events: list[SessionEvent]) -> None: ...
        def _apply_shard_action(self, action: ShardAction, now: float) -> None: ...
        def _add_public(self, name: str) -> None: ...
        def _apply_mark(
            self,
            symbol: str,
            mark: Decimal,
            ts_ms: int,
            cs: int | None,
            *,
            now: float,
            source: Source,
        ) -> None: ...

    @property
    def primary_public(self) -> str:
        return self._shards.primary

    def ticker_refs(self) -> dict[str, int]:
        """How many holders each subscribed ticker has."""
        return dict(self._ticker_refs)

    def set_ticker_refs(
        self, symbol: str, count: int, now: float, *, keep_mark: bool = False
    ) -> None:
        """Subscribes `symbol`'s ticker through the shards while `count` > 0, as if `count`
        positions held it; with `keep_mark` an unsubscribe keeps the symbol's mark."""
        for action in demand_change(self._shards, self._ticker_refs, symbol, count):
            if keep_mark and isinstance(action, UnassignTopic):
                self._collect(self._sessions[action.connection].remove_topic(action.topic, now))
            else:
                self._apply_shard_action(action, now)

    def retire_socket(self, name: str, reason: str) -> None:
        """Removes socket `name`: at once if it is not connected, else once it has closed."""
        session = self._sessions.get(name)
        if session is None:
            return
        if session.state is SessionState.DISCONNECTED:
            del self._sessions[name]
        else:
            self._retiring.add(name)
            self._collect(session.close(reason, reconnect=False))

    def restore_public_socket(self, now: float) -> None:
        """Brings the primary public socket back after `retire_socket`, to be dialled now."""
        primary = self._shards.primary
        self._retiring.discard(primary)
        if primary not in self._sessions:
            self._add_public(primary)
        else:
            self._sessions[primary].reconnect_now(now)

    def drop_rest_requests(self) -> None:
        """Forgets the queued REST requests (a core with no positions to fetch)."""
        self.rest.queue.clear()

    def apply_mark(
        self, symbol: str, mark: Decimal, ts_ms: int, cs: int | None, *, now: float, source: Source
    ) -> None:
        """A mark from outside the sockets, merged into the book (events as for a ticker)."""
        self._apply_mark(symbol, mark, ts_ms, cs, now=now, source=source)
