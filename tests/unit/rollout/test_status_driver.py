"""`get_status()["driver"]` (whose events consumers get) is there in every mode (issue 18)."""

from __future__ import annotations

import pytest

from bybit_hybrid.rollout.poller import AdaptiveBybitStream
from bybit_hybrid.service.streams import rollout_stream


def test_rest_mode_reports_rest_as_the_driver() -> None:
    assert AdaptiveBybitStream("key", "secret").get_status()["driver"] == "rest"


@pytest.mark.parametrize(
    ("mode", "driver"),
    [("canary", "rest"), ("parallel", "rest"), ("cutover", "hybrid"), ("hybrid", "hybrid")],
)
def test_rollout_modes_report_their_driver(mode: str, driver: str) -> None:
    stream = rollout_stream(mode, "key", "secret")
    assert stream.get_status()["driver"] == driver
