"""Ticker demand: a symbol's ticker topic is held once per open position in that symbol."""

from __future__ import annotations

from bybit_hybrid.protocol.core_types import ticker_topic
from bybit_hybrid.protocol.shards import PublicShards, ShardAction


def demand_change(
    shards: PublicShards, refs: dict[str, int], symbol: str, count: int
) -> list[ShardAction]:
    """Moves `symbol`'s topic references from `refs[symbol]` to `count` (its open positions
    now), acquiring or releasing the topic by the net difference; `refs` is updated. A flip
    (a close and an open in one input) nets to nothing: no unsubscribe/subscribe churn."""
    delta = count - refs.get(symbol, 0)
    topic = ticker_topic(symbol)
    actions: list[ShardAction] = []
    for _ in range(delta):
        actions += shards.acquire(topic)
    for _ in range(-delta):
        actions += shards.release(topic)
    if count:
        refs[symbol] = count
    else:
        refs.pop(symbol, None)
    return actions
