"""Endpoint selection: mainnet, testnet, demo (private on stream-demo, public mainnet), base URL."""

from __future__ import annotations

import pytest

from bybit_hybrid.errors import ConfigError
from bybit_hybrid.transport.endpoints import Endpoints


def test_mainnet_is_the_default() -> None:
    e = Endpoints.select()
    assert (e.rest_url, e.public_ws_url, e.private_ws_url) == (
        "https://api.bybit.com",
        "wss://stream.bybit.com/v5/public/linear",
        "wss://stream.bybit.com/v5/private",
    )


def test_testnet() -> None:
    e = Endpoints.select(testnet=True)
    assert e.rest_url == "https://api-testnet.bybit.com"
    assert e.public_ws_url == "wss://stream-testnet.bybit.com/v5/public/linear"
    assert e.private_ws_url == "wss://stream-testnet.bybit.com/v5/private"


def test_demo_uses_mainnet_public_data() -> None:
    e = Endpoints.select(demo=True)
    assert e.rest_url == "https://api-demo.bybit.com"
    assert e.private_ws_url == "wss://stream-demo.bybit.com/v5/private"
    assert e.public_ws_url == "wss://stream.bybit.com/v5/public/linear"


@pytest.mark.parametrize(
    ("base_url", "ws_root"),
    [
        ("http://127.0.0.1:8080", "ws://127.0.0.1:8080"),
        ("http://localhost:9/", "ws://localhost:9"),
        ("http://[::1]:9", "ws://[::1]:9"),
        ("https://bybit.example.com", "wss://bybit.example.com"),
    ],
)
def test_base_url(base_url: str, ws_root: str) -> None:
    e = Endpoints.select(base_url=base_url)
    assert e.rest_url == base_url.rstrip("/")
    assert e.public_ws_url == ws_root + "/v5/public/linear"
    assert e.private_ws_url == ws_root + "/v5/private"


def test_plain_http_to_a_remote_host_is_refused_unless_allowed() -> None:
    with pytest.raises(ConfigError, match="plain http for a non-loopback host"):
        Endpoints.select(base_url="http://10.0.0.5:80")
    assert Endpoints.select(base_url="http://10.0.0.5:80", allow_insecure=True).name == "custom"


@pytest.mark.parametrize("bad", ["127.0.0.1:80", "ftp://x", "http://"])
def test_malformed_base_url(bad: str) -> None:
    with pytest.raises(ConfigError, match="must look like"):
        Endpoints.select(base_url=bad)


def test_only_one_endpoint() -> None:
    with pytest.raises(ConfigError, match="choose one endpoint"):
        Endpoints.select(testnet=True, demo=True)


@pytest.mark.parametrize(
    ("region", "rest", "stream"),
    [
        ("eu", "https://api.bybit.eu", "wss://stream.bybit.eu"),
        ("tr", "https://api.bybit.tr", "wss://stream.bybit.tr"),
        ("ge", "https://api.bybitgeorgia.ge", "wss://stream.bybitgeorgia.ge"),
        ("jp", "https://api.manepa.jp", "wss://stream.manepa.jp"),
        ("bytick", "https://api.bytick.com", "wss://stream.bytick.com"),
    ],
)
def test_regions_pick_their_rest_and_stream_hosts(region: str, rest: str, stream: str) -> None:
    e = Endpoints.select(region=region)
    assert (e.name, e.rest_url) == (f"mainnet-{region}", rest)
    assert e.public_ws_url == stream + "/v5/public/linear"
    assert e.private_ws_url == stream + "/v5/private"


def test_a_region_is_only_for_mainnet() -> None:
    assert Endpoints.select(region="global") == Endpoints.mainnet()
    with pytest.raises(ConfigError, match="region 'eu' is for mainnet; testnet"):
        Endpoints.select(region="eu", testnet=True)
    with pytest.raises(ConfigError, match="region 'xx' is not one of global, bytick"):
        Endpoints.select(region="xx")
