"""RestNeeds and the seed/demand helpers split out of HybridCore: ids, retries, coverage."""

from __future__ import annotations

import random

from bybit_hybrid.protocol.backoff import BackoffPolicy
from bybit_hybrid.protocol.core_types import FetchPositions, FetchTickers, RestRequest, unseeded
from bybit_hybrid.protocol.rest_needs import RestNeeds
from bybit_hybrid.protocol.shards import PublicShards
from bybit_hybrid.protocol.ticker_demand import demand_change


def test_a_failed_request_is_retried_after_its_delay_and_an_answer_settles_it() -> None:
    needs = RestNeeds(BackoffPolicy(), random.Random(1))
    first = FetchPositions(needs.next_id(), "bootstrap")
    needs.want(first)
    assert needs.take() == [first] and needs.queue == []
    failed = needs.failed(first.request_id, now=100.0)
    assert failed is not None and failed[0] is first and failed[1] > 0
    assert needs.failed(first.request_id, now=100.0) is None  # not in flight any more
    needs.tick(100.0 + failed[1] / 2)
    assert needs.queue == [] and needs.retries_pending() == 1
    needs.tick(100.0 + failed[1])
    assert needs.queue == [first] and needs.retries_pending() == 0
    assert needs.take() == [first] and needs.answered(first.request_id) is first
    assert needs.answered(first.request_id) is None


def test_unseeded_leaves_out_symbols_already_being_fetched() -> None:
    pending: list[RestRequest] = [FetchTickers(1, ("A", "B")), FetchPositions(2, "bootstrap")]
    assert unseeded(["B", "C", "C", "A", "D"], pending) == ("C", "D")
    assert unseeded(["X"], [FetchTickers(3, None)]) == ()


def test_demand_change_moves_by_the_net_difference() -> None:
    shards = PublicShards()
    refs: dict[str, int] = {}
    assert demand_change(shards, refs, "BTCUSDT", 2) and refs == {"BTCUSDT": 2}
    assert demand_change(shards, refs, "BTCUSDT", 2) == []  # a flip nets to nothing
    demand_change(shards, refs, "BTCUSDT", 0)
    assert refs == {} and shards.connection_of("tickers.BTCUSDT") is None
