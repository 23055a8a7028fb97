"""`--region`, `--proxy`, `--proxy-from-env` and their settings, merged into stream arguments."""

from __future__ import annotations

import argparse

import pytest

from bybit_hybrid.errors import ConfigError
from bybit_hybrid.service.commands.endpoint_flags import add_endpoint_flags, endpoint_kwargs
from bybit_hybrid.service.settings import load_settings
from bybit_hybrid.transport.proxy import Proxy


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_endpoint_flags(parser)
    return parser.parse_args(list(argv))


def test_region_from_the_flag_beats_the_setting() -> None:
    settings = load_settings(overrides={"region": "tr"})
    assert endpoint_kwargs(parse("--mainnet"), settings)["region"] == "tr"
    assert endpoint_kwargs(parse("--mainnet", "--region", "eu"), settings)["region"] == "eu"
    assert endpoint_kwargs(parse("--mainnet"))["region"] is None


def test_a_region_with_testnet_is_refused() -> None:
    with pytest.raises(ConfigError, match="for mainnet"):
        endpoint_kwargs(parse("--testnet", "--region", "eu"))


def test_proxy_from_flag_setting_or_opt_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings(overrides={"proxy_url": "socks5://u:secret@127.0.0.1:1080"})
    proxy = endpoint_kwargs(parse("--mainnet"), settings)["proxy"]
    assert isinstance(proxy, Proxy) and proxy.is_socks and "secret" not in str(proxy)
    assert "secret" not in repr(settings) and "secret" not in str(settings.model_dump())
    flagged = endpoint_kwargs(parse("--mainnet", "--proxy", "http://127.0.0.1:3128"), settings)
    assert isinstance(flagged["proxy"], Proxy) and flagged["proxy"].port == 3128
    monkeypatch.setenv("HTTPS_PROXY", "http://env:8080")
    assert endpoint_kwargs(parse("--mainnet"))["proxy"] is None, "the environment needs opt-in"
    env = endpoint_kwargs(parse("--mainnet", "--proxy-from-env"))["proxy"]
    assert isinstance(env, Proxy) and env.host == "env"
    monkeypatch.setenv("NO_PROXY", "bybit.com")
    assert endpoint_kwargs(parse("--mainnet", "--proxy-from-env"))["proxy"] is None
