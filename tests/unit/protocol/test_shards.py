"""PublicShards: ref-counted ticker demand spread over public connections under the args limit."""

from __future__ import annotations

import pytest

from bybit_hybrid.protocol.shards import (
    PUBLIC_ARGS_LIMIT_CHARS,
    AssignTopic,
    CloseConnection,
    OpenConnection,
    PublicShards,
    ShardAction,
    UnassignTopic,
)


def topic20(n: int) -> str:
    """A 20-character ticker topic: `tickers.` + a 12-character symbol."""
    topic = f"tickers.S{n:07d}USDT"
    assert len(topic) == 20
    return topic


def test_the_default_limit_is_bybits_21000_characters() -> None:
    shards = PublicShards()
    assert shards.max_args_chars == PUBLIC_ARGS_LIMIT_CHARS == 21_000
    assert shards.connections == ("public-1",)


def test_a_second_connection_opens_exactly_at_the_21000_character_limit() -> None:
    shards = PublicShards()
    for n in range(1050):  # 1050 × 20 = 21,000: fills public-1 to the character
        assert shards.acquire(topic20(n)) == [AssignTopic("public-1", topic20(n))]
    assert shards.args_chars("public-1") == 21_000
    actions = shards.acquire(topic20(1050))
    assert actions == [OpenConnection("public-2"), AssignTopic("public-2", topic20(1050))]
    assert shards.connections == ("public-1", "public-2")
    assert all(shards.args_chars(c) <= 21_000 for c in shards.connections)


def test_small_limit_spreads_topics_first_fit() -> None:
    shards = PublicShards(max_args_chars=30)
    actions: list[ShardAction] = []
    for topic in ["tickers.AA", "tickers.BB", "tickers.CC", "tickers.DD"]:  # 10 chars each
        actions += shards.acquire(topic)
    assert actions == [
        AssignTopic("public-1", "tickers.AA"),
        AssignTopic("public-1", "tickers.BB"),
        AssignTopic("public-1", "tickers.CC"),
        OpenConnection("public-2"),
        AssignTopic("public-2", "tickers.DD"),
    ]
    assert shards.topics_of("public-1") == ("tickers.AA", "tickers.BB", "tickers.CC")


def test_hedge_mode_refcounts_keep_a_ticker_until_the_last_release() -> None:
    shards = PublicShards()
    assert shards.acquire("tickers.BTCUSDT") == [AssignTopic("public-1", "tickers.BTCUSDT")]
    assert shards.acquire("tickers.BTCUSDT") == []  # the other side of a hedge
    assert shards.refcount("tickers.BTCUSDT") == 2
    assert shards.release("tickers.BTCUSDT") == []
    assert shards.connection_of("tickers.BTCUSDT") == "public-1"
    assert shards.release("tickers.BTCUSDT") == [UnassignTopic("public-1", "tickers.BTCUSDT")]
    assert shards.connection_of("tickers.BTCUSDT") is None


def test_a_topic_stays_on_its_connection_while_others_come_and_go() -> None:
    shards = PublicShards(max_args_chars=20)
    shards.acquire("tickers.AA")
    shards.acquire("tickers.BB")
    shards.acquire("tickers.CC")  # public-2
    shards.release("tickers.AA")  # room on public-1 again
    assert shards.connection_of("tickers.CC") == "public-2"  # no migration
    assert shards.acquire("tickers.DD") == [AssignTopic("public-1", "tickers.DD")]


def test_an_empty_extra_connection_is_closed_but_the_primary_never() -> None:
    shards = PublicShards(max_args_chars=10)
    shards.acquire("tickers.AA")
    assert shards.acquire("tickers.BB") == [
        OpenConnection("public-2"),
        AssignTopic("public-2", "tickers.BB"),
    ]
    assert shards.release("tickers.BB") == [
        UnassignTopic("public-2", "tickers.BB"),
        CloseConnection("public-2"),
    ]
    assert shards.release("tickers.AA") == [UnassignTopic("public-1", "tickers.AA")]
    assert shards.connections == ("public-1",)


def test_new_connections_reuse_the_lowest_free_number() -> None:
    shards = PublicShards(max_args_chars=10)
    for topic in ["tickers.AA", "tickers.BB", "tickers.CC"]:
        shards.acquire(topic)
    shards.release("tickers.BB")  # public-2 closes
    assert shards.connections == ("public-1", "public-3")
    assert shards.acquire("tickers.DD")[0] == OpenConnection("public-2")


def test_assignment_is_deterministic() -> None:
    def run() -> list[ShardAction]:
        shards = PublicShards(max_args_chars=45)
        actions: list[ShardAction] = []
        for n in range(10):
            actions += shards.acquire(f"tickers.T{n}USDT")
            if n % 3 == 2:
                actions += shards.release(f"tickers.T{n - 1}USDT")
        return actions

    assert run() == run()


def test_misuse_is_rejected() -> None:
    shards = PublicShards(max_args_chars=10)
    with pytest.raises(ValueError, match="released more often than acquired"):
        shards.release("tickers.AA")
    with pytest.raises(ValueError, match="longer than max_args_chars"):
        shards.acquire("tickers.TOOLONG")
    with pytest.raises(KeyError, match="no public connection"):
        shards.topics_of("public-9")
    with pytest.raises(ValueError, match="max_args_chars"):
        PublicShards(max_args_chars=0)
