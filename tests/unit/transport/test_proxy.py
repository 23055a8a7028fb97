"""Proxy URLs: parsing, masking everywhere, the opt-in environment and NO_PROXY."""

from __future__ import annotations

import pytest

from bybit_hybrid.errors import ConfigError
from bybit_hybrid.transport.proxy import Proxy, resolve_proxy

SECRET = "p@ss:w/rd"
URL = "http://trader:p%40ss%3Aw%2Frd@proxy.example:3128"


def test_credentials_are_decoded_and_never_shown() -> None:
    proxy = Proxy.from_url(URL)
    assert (proxy.user, proxy.password, proxy.host, proxy.port) == (
        "trader", SECRET, "proxy.example", 3128,
    )  # fmt: skip
    for text in (str(proxy), repr(proxy), f"{proxy}"):
        assert SECRET not in text and "p%40ss" not in text
    assert str(proxy) == "http://trader:***@proxy.example:3128"
    assert proxy.url() == URL, "the client library gets the exact credentials back"
    assert proxy.url(with_credentials=False) == "http://proxy.example:3128"


@pytest.mark.parametrize(
    ("url", "port", "socks"),
    [
        ("http://10.0.0.1", 80, False),
        ("https://proxy.example", 443, False),
        ("socks5://127.0.0.1", 1080, True),
        ("socks5h://[::1]:9050", 9050, True),
    ],
)
def test_schemes_and_default_ports(url: str, port: int, socks: bool) -> None:
    proxy = Proxy.from_url(url)
    assert (proxy.port, proxy.is_socks) == (port, socks)
    assert proxy.request_kwargs() == ({} if socks else {"proxy": proxy.url()})


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("ftp://u:hunter2@host:21", "scheme 'ftp'"),
        ("http://u:hunter2@:8080", "no host"),
        ("proxy.example:3128", "scheme"),
        ("http://u:hunter2@host:99999", "not a proxy URL"),
    ],
)
def test_bad_urls_are_named_without_the_password(url: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says) as caught:
        Proxy.from_url(url)
    assert "hunter2" not in str(caught.value) and "proxy_url" in str(caught.value)


def test_credentials_go_in_a_header_only_for_forwarded_plain_requests() -> None:
    proxy = Proxy.from_url(URL)
    auth = proxy.request_kwargs()["proxy_headers"]
    assert auth["Proxy-Authorization"].startswith("Basic ")
    assert proxy.forward_headers("ws://127.0.0.1:1/v5/private") == auth
    assert proxy.forward_headers("wss://stream.bybit.com/v5/private") == {}
    assert proxy.forward_headers("https://api.bybit.com/v5/market/time") == {}


def test_the_environment_is_read_only_on_request_and_honours_no_proxy() -> None:
    env = {"HTTPS_PROXY": "http://env-proxy:8080", "NO_PROXY": "localhost,.internal"}
    assert resolve_proxy(None, environ=env) is None, "not without the opt-in"
    chosen = resolve_proxy(None, from_env=True, target_host="api.bybit.com", environ=env)
    assert chosen is not None and chosen.host == "env-proxy"
    assert resolve_proxy(None, from_env=True, target_host="api.internal", environ=env) is None
    assert resolve_proxy(None, from_env=True, target_host="localhost", environ=env) is None
    socks = resolve_proxy(None, from_env=True, environ={"ALL_PROXY": "socks5://s:1080"})
    assert socks is not None and socks.is_socks
    explicit = resolve_proxy("http://mine:1", from_env=True, environ=env)
    assert explicit is not None and explicit.host == "mine", "an explicit URL wins"


def test_a_bad_environment_value_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="HTTPS_PROXY"):
        resolve_proxy(None, from_env=True, environ={"HTTPS_PROXY": "nonsense"})
