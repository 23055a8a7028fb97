"""Prometheus metrics of an account worker on the scale-out bus, read from `status["bus"]`.

Labels never hold URLs, credentials or account keys: the bus URL may carry a password, so it
is not exported at all (it is in `/status`, masked).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

_P = "bybit_hybrid_bus"

# (metric suffix, key in status["bus"], help) of the counters.
_COUNTERS = (
    ("marks_received", "marks_received", "marks received from the bus (any hub)"),
    ("bad_marks", "bad_marks", "marks from the bus that did not decode (ignored)"),
    ("failovers", "failovers", "times the worker fell back to its own public socket"),
    (
        "position_events_published",
        "events_published",
        "position events the bus acknowledged as new (bybit.positions.{account})",
    ),
    (
        "position_events_duplicates",
        "events_duplicates",
        "position events the bus already held (a restart's re-announcements)",
    ),
    ("publish_retries", "events_retries", "position event publishes retried (bus away)"),
    ("position_events_dropped", "events_dropped", "position events dropped: backlog full"),
)


def bus_metrics(bus: dict[str, Any] | None) -> Iterator[Metric]:
    """The worker's bus gauges and counters; nothing for a stream without a bus."""
    if not isinstance(bus, dict):
        return
    yield _gauge("connected", "1 while the NATS connection is up", bus.get("connected"))
    yield _gauge(
        "fallback",
        "1 while the marks come from this account's own public socket (no healthy hub)",
        bus.get("mode") == "fallback",
    )
    age = GaugeMetricFamily(
        f"{_P}_hub_heartbeat_age_seconds", "seconds since the last heartbeat of any hub"
    )
    if bus.get("hub_heartbeat_age_s") is not None:
        age.add_metric([], float(bus["hub_heartbeat_age_s"]))
    yield age
    own = bus.get("own_socket_symbols") or []
    yield _gauge(
        "own_socket_symbols",
        "symbols on the own public socket while the rest come from the bus (stale on the bus)",
        len(own),
    )
    yield _gauge(
        "mark_subjects", "bybit.marks.{SYMBOL} subjects subscribed", bus.get("mark_subjects")
    )
    yield _gauge(
        "position_events_backlog",
        "position events waiting to reach the bus",
        bus.get("events_backlog"),
    )
    for suffix, key, text in _COUNTERS:
        counter = CounterMetricFamily(f"{_P}_{suffix}", text)
        counter.add_metric([], float(bus.get(key) or 0))
        yield counter


def _gauge(suffix: str, text: str, value: float | bool | None) -> GaugeMetricFamily:
    gauge = GaugeMetricFamily(f"{_P}_{suffix}", text)
    gauge.add_metric([], float(value or 0))
    return gauge
