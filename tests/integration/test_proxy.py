"""REST and both WebSockets through a proxy started by the test: HTTP (with credentials), SOCKS5,
a refused proxy, and credentials that never show up in reprs, errors or logs."""

from __future__ import annotations

import logging
import random
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from bybit_hybrid.protocol.events import PositionOpened
from bybit_hybrid.sim import SimServer
from bybit_hybrid.stream import BybitHybridStream
from bybit_hybrid.transport.errors import TransportError
from bybit_hybrid.transport.proxy import Proxy
from bybit_hybrid.transport.rest import BybitRestClient
from bybit_hybrid.wire.signing import Credentials
from tests.integration.stream_harness import CONFIG
from tests.proxies import HttpProxy, Socks5Proxy
from tests.support import UNIT_S, wait_for

PASSWORD = "pr0xy-s3cret"


@pytest.fixture
async def http_proxy() -> AsyncIterator[HttpProxy]:
    proxy = await HttpProxy("trader", PASSWORD).start()
    yield proxy
    await proxy.close()


@pytest.fixture
async def socks_proxy() -> AsyncIterator[Socks5Proxy]:
    proxy = await Socks5Proxy("trader", PASSWORD).start()
    yield proxy
    await proxy.close()


def _opened(event: object, symbol: str) -> bool:
    return isinstance(event, PositionOpened) and event.key.symbol == symbol


async def _stream_through(sim: SimServer, proxy: Proxy) -> list[object]:
    """Runs a stream via `proxy` until a position opened on the simulator reaches it."""
    events: list[object] = []
    stream = BybitHybridStream(
        sim.api_key,
        sim.api_secret,
        base_url=sim.base_url,
        config=CONFIG,
        rng=random.Random(7),
        proxy=proxy,
    )
    stream.add_listener(events.append)
    await stream.start()
    try:
        await stream.wait_ready(3 * UNIT_S)
        await sim.open_position("SOLUSDT", "Buy", Decimal("0.5"))
        await wait_for(
            lambda: any(
                isinstance(e, PositionOpened) and e.key.symbol == "SOLUSDT" for e in events
            ),
            5 * UNIT_S,
            "the open pushed through the proxy",
        )
        assert PASSWORD not in repr(stream)
    finally:
        await stream.stop()
    return events


async def test_rest_and_both_sockets_go_through_an_http_proxy(
    sim: SimServer, http_proxy: HttpProxy, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    proxy = Proxy.from_url(http_proxy.url("trader", PASSWORD))
    await _stream_through(sim, proxy)
    paths = http_proxy.log.tunnels
    assert paths["/v5/public/linear"] >= 1 and paths["/v5/private"] >= 1
    assert any(p.startswith("/v5/position/list") or p == "/v5/market/time" for p in paths)
    assert http_proxy.log.refused_auth == 0
    assert PASSWORD not in caplog.text


async def test_both_sockets_go_through_a_socks5_proxy(
    sim: SimServer, socks_proxy: Socks5Proxy
) -> None:
    await _stream_through(sim, Proxy.from_url(socks_proxy.url("trader", PASSWORD)))
    assert sum(socks_proxy.log.tunnels.values()) >= 3  # REST, public, private
    assert socks_proxy.log.refused_auth == 0


async def test_wrong_proxy_credentials_fail_with_the_proxy_named_and_masked(
    sim: SimServer, http_proxy: HttpProxy
) -> None:
    proxy = Proxy.from_url(http_proxy.url("trader", "wrong-" + PASSWORD))
    client = BybitRestClient(sim.base_url, Credentials(sim.api_key, sim.api_secret), proxy=proxy,
                             max_retries=0)  # fmt: skip
    try:
        with pytest.raises(TransportError) as caught:
            await client.server_time_ms()
    finally:
        await client.close()
    text = str(caught.value)
    assert "407" in text and f"127.0.0.1:{http_proxy.port}" in text
    assert PASSWORD not in text and "trader:***@" in text
    assert http_proxy.log.refused_auth == 1


async def test_a_refused_proxy_names_itself(sim: SimServer) -> None:
    closed = await HttpProxy().start()
    port = closed.port
    await closed.close()
    proxy = Proxy.from_url(f"http://trader:{PASSWORD}@127.0.0.1:{port}")
    client = BybitRestClient(sim.base_url, None, proxy=proxy, max_retries=0)
    try:
        with pytest.raises(TransportError) as caught:
            await client.server_time_ms()
    finally:
        await client.close()
    assert f"proxy http://trader:***@127.0.0.1:{port}" in str(caught.value)
    assert PASSWORD not in str(caught.value)
