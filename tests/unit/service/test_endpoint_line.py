"""The start-up endpoint line (issue 18 item 3): endpoint (with region), hosts, proxy, mode."""

from __future__ import annotations

from bybit_hybrid.service.commands.endpoint_flags import endpoint_line
from bybit_hybrid.transport.proxy import Proxy


def _kwargs(**chosen: object) -> dict[str, object]:
    base: dict[str, object] = {
        "testnet": False,
        "demo": False,
        "base_url": None,
        "allow_insecure": False,
        "region": None,
        "proxy": None,
    }
    return {**base, **chosen}


def test_mainnet_says_real_money_and_its_hosts() -> None:
    line = endpoint_line(_kwargs(), "hybrid")
    assert line == (
        "endpoint mainnet (REAL MONEY): rest api.bybit.com, public stream.bybit.com, "
        "private stream.bybit.com; mode hybrid"
    )


def test_a_region_testnet_and_demo_are_named() -> None:
    assert endpoint_line(_kwargs(region="eu"), "rest").startswith(
        "endpoint mainnet-eu (REAL MONEY)"
    )
    assert endpoint_line(_kwargs(testnet=True), "canary").startswith("endpoint testnet (testnet)")
    demo = endpoint_line(_kwargs(demo=True), "hybrid")
    assert demo.startswith("endpoint demo (demo trading): rest api-demo.bybit.com")


def test_a_proxy_is_named_without_its_credentials() -> None:
    proxy = Proxy.from_url("socks5://trader:hunter2@10.0.0.2:1080")
    line = endpoint_line(_kwargs(proxy=proxy), "hybrid")
    assert "; via proxy socks5://10.0.0.2:1080; mode hybrid" in line
    assert "hunter2" not in line and "trader" not in line
