"""The asyncio shell every position stream shares: its parameters, REST client, clock and fan-out.

`StreamParams` is who and where (the keys, the endpoints, the proxy, the HTTP backend, the
random source) once, instead of the same keywords on every stream. `ShellStream` is the one
start/stop/wait_ready: it opens the REST client and reads the server's clock, anchors the
stream's clock, clears readiness, starts delivery, and leaves to each stream only the parts
that are its own (`_prepare`, `_start_parts`, `_stop_parts`, `_close_parts`).
"""

from __future__ import annotations

import abc
import logging
import random
from dataclasses import dataclass

from bybit_hybrid.clock import AnchoredClock
from bybit_hybrid.errors import KeyRejectedError
from bybit_hybrid.facade import PositionStream
from bybit_hybrid.readiness import Readiness
from bybit_hybrid.router.fanout import CoreListener, EventHandler, Fanout
from bybit_hybrid.transport.endpoints import Endpoints
from bybit_hybrid.transport.errors import BybitError
from bybit_hybrid.transport.http import HttpBackend
from bybit_hybrid.transport.proxy import Proxy
from bybit_hybrid.transport.rest import BybitRestClient
from bybit_hybrid.wire.signing import Credentials

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, repr=False)
class StreamParams:
    """The keys, the endpoints and how to reach them: what every stream of one account shares."""

    api_key: str
    api_secret: str
    endpoints: Endpoints
    proxy: Proxy | None = None
    http_backend: HttpBackend | None = None
    rng: random.Random | None = None

    def __post_init__(self) -> None:
        self.credentials()  # an empty key or secret is refused here, not at start

    def __repr__(self) -> str:
        via = "" if self.proxy is None else f", proxy='{self.proxy}'"
        return f"StreamParams(endpoints={self.endpoints.name!r}, {self.credentials()!r}{via})"

    def credentials(self) -> Credentials:
        return Credentials(self.api_key, self.api_secret)

    @classmethod
    def of(
        cls,
        api_key: str,
        api_secret: str,
        testnet: bool = False,
        *,
        demo: bool = False,
        base_url: str | None = None,
        allow_insecure: bool = False,
        region: str | None = None,
        proxy: Proxy | None = None,
        http_backend: HttpBackend | None = None,
        rng: random.Random | None = None,
    ) -> StreamParams:
        """The seed's constructor keywords as parameters; a bad endpoint choice raises here."""
        endpoints = Endpoints.select(
            testnet=testnet,
            demo=demo,
            base_url=base_url,
            allow_insecure=allow_insecure,
            region=region,
        )
        return cls(api_key, api_secret, endpoints, proxy, http_backend, rng)


class ShellStream(PositionStream):
    """One account's stream: the REST client, the anchored clock, readiness and delivery."""

    def __init__(self, params: StreamParams, event_handler: EventHandler | None) -> None:
        self.params = params
        self._credentials = params.credentials()
        self.endpoints = params.endpoints
        self.proxy = params.proxy
        self._http_backend = params.http_backend
        self._rng = params.rng
        self._fanout = Fanout(event_handler)
        self._ready = Readiness()
        self._rest: BybitRestClient | None = None
        self._started = False
        self._started_at: float | None = None
        self._anchored: AnchoredClock | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Opens REST, reads the server clock, then starts the stream's own parts."""
        if self._started:
            raise RuntimeError("stream is already started")
        self._rest = BybitRestClient(
            self.endpoints.rest_url,
            self._credentials,
            backend=self._http_backend,
            proxy=self.proxy,
        )
        await self._sync_clock()
        # Anchored once per start: a later resync or host clock step never moves the timers.
        self._anchored = None
        self._anchor()
        # A restart begins a new book: not ready until it is bootstrapped again, and events
        # the previous run never delivered belong to the old book.
        self._ready.clear()
        self._started = True
        self._prepare()
        self._started_at = self._clock()
        self._fanout.start()
        await self._start_parts()

    async def stop(self) -> None:
        """Stops every task and closes every socket and HTTP session; never raises."""
        await self._stop_parts()
        await self._fanout.stop()
        await self._close_parts()
        if self._rest is not None:
            await self._rest.close()
        self._rest = None
        self._started = False

    async def wait_ready(self, timeout_s: float = 10.0) -> None:
        """Waits for the first REST snapshot to be merged into the book.

        A key Bybit rejects before then (the private auth reply, or REST's retCode 10003,
        10004, 10005 or 10010) stops the stream and raises `KeyRejectedError` at once, naming
        the retCode; retrying cannot fix a wrong key. `TimeoutError` means no answer at all.
        """
        try:
            await self._ready.wait(timeout_s)
        except KeyRejectedError:
            await self.stop()
            raise

    def add_listener(self, listener: CoreListener) -> None:
        """Receives every event synchronously (positions, sockets, subscriptions, REST)."""
        self._fanout.add_listener(listener)

    def now(self) -> float:
        """The stream's clock (epoch seconds corrected by the server offset)."""
        return self._clock()

    @property
    def rest(self) -> BybitRestClient:
        if self._rest is None:
            raise RuntimeError("stream is not started")
        return self._rest

    # --- what each stream adds ---------------------------------------------------------------

    @abc.abstractmethod
    def _prepare(self) -> None:
        """Builds this start's parts (a new book, its runner or poller); no I/O yet."""

    @abc.abstractmethod
    async def _start_parts(self) -> None:
        """Starts the parts `_prepare` built."""

    @abc.abstractmethod
    async def _stop_parts(self) -> None:
        """Stops the parts (before delivery stops); never raises."""

    async def _close_parts(self) -> None:
        """Closes what the parts own beyond the REST client (after delivery stopped)."""

    # --- the clock ---------------------------------------------------------------------------

    def _clock(self) -> float:
        """Bybit's time on the monotonic clock, anchored at start (see `bybit_hybrid.clock`)."""
        return self._anchor()()

    def _anchor(self) -> AnchoredClock:
        """This run's clock itself: the parts that read it per frame call it without this
        stream's `_clock` in between."""
        if self._anchored is None:
            offset_ms = self._rest.clock_offset_ms if self._rest is not None else 0
            self._anchored = AnchoredClock(offset_ms / 1000)
        return self._anchored

    async def _sync_clock(self) -> None:
        assert self._rest is not None
        try:
            await self._rest.sync_clock()
        except BybitError as exc:
            log.warning("could not read the server clock, using the local one: %s", exc)
