"""A lagging `position/list` answer against the stream end to end (issue 19 F1).

Bybit documents that `position/list` may lag (BYBIT_V5 §7.2). Here the complete listing a
private reconnect asks for lags behind a position the stream saw open: the book must ask
`position/list?symbol=` before believing the absence, and keep the position.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from decimal import Decimal

import pytest

from bybit_hybrid.protocol.hybrid import PRIVATE, Reconciled
from bybit_hybrid.protocol.session import SessionState
from bybit_hybrid.sim import SimServer
from bybit_hybrid.sim.faults import Target
from bybit_hybrid.transport.http import AiohttpBackend, HttpResponse
from tests.integration.rollout_harness import POLL, start_rest
from tests.integration.stream_harness import CONFIG, sim_config, start_stream
from tests.support import UNIT_S, wait_for

SOL = "SOLUSDT"


class LaggingPositionList:
    """An `HttpBackend` that, while `lagging`, answers every complete `position/list` (the
    `settleCoin` pages) with the answer it got when `freeze()` was called: the exchange as it
    was then. `?symbol=` queries and everything else go through."""

    def __init__(self) -> None:
        self._inner = AiohttpBackend()
        self._last: dict[str, HttpResponse] = {}
        self._frozen: dict[str, HttpResponse] = {}
        self.lagging = False
        self.lagged = 0
        self.symbol_queries: list[str] = []

    def freeze(self) -> None:
        self._frozen = dict(self._last)

    async def request(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None
    ) -> HttpResponse:
        if "/v5/position/list" in url and "symbol=" in url:
            self.symbol_queries.append(url)
        complete = "/v5/position/list" in url and "settleCoin=" in url
        if complete and self.lagging and url in self._frozen:
            self.lagged += 1
            return self._frozen[url]
        response = await self._inner.request(method, url, headers, body)
        if complete:
            self._last[url] = response
        return response

    async def close(self) -> None:
        await self._inner.close()


@pytest.fixture
async def sim() -> AsyncIterator[SimServer]:
    async with SimServer(sim_config()) as server:
        yield server


async def test_a_lagging_reconcile_does_not_close_a_position_the_stream_saw_open(
    sim: SimServer,
) -> None:
    backend = LaggingPositionList()
    h = await start_stream(sim, config=CONFIG, http_backend=backend)
    stream = h.stream
    try:
        backend.freeze()  # the listing as it is now: BTC and ETH, no SOL
        since = len(h.delivered)
        await sim.open_position(SOL, "Buy", Decimal("1"))
        await h.wait_delivered(lambda d: d["symbol"] == SOL, since, 3 * UNIT_S, "SOL open (push)")

        backend.lagging = True
        dropped_at = time.monotonic()
        assert await sim.faults.drop(Target.PRIVATE) == 1

        def reconciled() -> bool:
            return any(e.reason == "reconnect" for e in h.of_type(Reconciled, dropped_at))

        await wait_for(reconciled, 3 * UNIT_S, "the reconnect's reconcile")
        assert backend.lagged >= 1  # the reconcile really got the lagging answer

        def sol_closes() -> list[object]:
            return [d for d in h.delivered if d.data["symbol"] == SOL and d.data["size"] == 0]

        def settled() -> bool:
            confirmed = getattr(stream.core.book.stats, "confirmations", 0) >= 1
            return confirmed or bool(sol_closes())

        await wait_for(settled, 3 * UNIT_S, "SOL confirmed (or closed)")
        backend.lagging = False
        assert sol_closes() == [], "one lagging answer closed a position open on the exchange"
        stats = stream.get_stats()
        assert stats["reconcile_misses"] >= 1 and stats["reconcile_closes"] == 0
        assert any(f"symbol={SOL}" in url for url in backend.symbol_queries)
        view = next(v for v in stream.positions() if v.key.symbol == SOL)
        assert view.size == Decimal("1")
        assert stream.core.session(PRIVATE).state is SessionState.LIVE

        # A real close still arrives (here by the push).
        since = len(h.delivered)
        await sim.close_position(SOL)
        await h.wait_delivered(
            lambda d: d["symbol"] == SOL and d["status"] == "closed", since, 3 * UNIT_S, "close"
        )
    finally:
        await stream.stop()
        await backend.close()  # a lent backend is the lender's to close (its keep-alive socket)
        await h.close()


async def test_rest_mode_keeps_a_position_a_lagging_poll_leaves_out(sim: SimServer) -> None:
    # The REST-only stream: every poll answered by a listing from before SOL opened. The
    # poller asks position/list?symbol= right away and SOL stays; a real close still arrives
    # within the poll that misses it plus that one call.
    backend = LaggingPositionList()
    h = await start_rest(sim, poll=POLL, http_backend=backend)
    stream = h.stream
    try:
        backend.freeze()  # BTC and ETH, no SOL
        t0 = time.monotonic()
        await sim.open_position(SOL, "Buy", Decimal("1"))
        await h.wait_delivered(lambda d: d["symbol"] == SOL, t0, 3 * UNIT_S, "SOL open")
        backend.lagging = True
        lagged = backend.lagged
        polls = stream.get_stats()["polls"]
        await wait_for(
            lambda: stream.get_stats()["polls"] >= polls + 3, 6 * UNIT_S, "three lagging polls"
        )
        assert backend.lagged > lagged
        closes = [d for d in h.delivered if d.data["symbol"] == SOL and d.data["size"] == 0]
        assert closes == [], "a lagging poll closed a position open on the exchange"
        assert stream.get_stats()["reconcile_misses"] >= 1
        backend.lagging = False

        t1 = time.monotonic()
        await sim.close_position(SOL)
        closed = await h.wait_delivered(
            lambda d: d["symbol"] == SOL and d["status"] == "closed", t1, 3 * UNIT_S, "close"
        )
        assert closed.data["source"] == "rest"
    finally:
        await stream.stop()
        await backend.close()
        await h.close()
