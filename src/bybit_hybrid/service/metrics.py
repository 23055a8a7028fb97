"""Prometheus metrics of a running stack: core-event counters plus status read at scrape time.

`ServiceMetrics` owns its own `CollectorRegistry` (never the process-global one), so several
stacks in one process (tests) do not collide. Two feeds:

- `on_event(event)`, a `PositionStream` listener: counts events by type, reconnects by socket
  and reason, failover switches, alerts, divergences, and observes event latency.
- a custom collector that, on each scrape, reads `get_stats()` / `get_status()` of the stream,
  `status()` of the protection and the REST clients' `RestMetrics`.

Labels only ever hold socket names, symbols, event types, endpoints, retCodes and short reason
words: never keys, secrets, signatures or free-form messages.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from bybit_hybrid.protocol.alerts import AlertCleared, AlertRaised
from bybit_hybrid.protocol.compare import Divergence
from bybit_hybrid.protocol.events import MarkUpdated, PositionEvent
from bybit_hybrid.protocol.failover import FailoverSwitched
from bybit_hybrid.protocol.hybrid import CoreEvent
from bybit_hybrid.protocol.session import SessionState, SocketDead, StateChanged
from bybit_hybrid.service.metrics_bus import bus_metrics
from bybit_hybrid.transport.rest import RestMetrics

PREFIX = "bybit_hybrid"
LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_REASON_WORD = re.compile(r"[a-z_]+")
_POSITION_EVENTS = ("opened", "changed", "closed", "mark")
# A socket that goes straight from one of these to DISCONNECTED was dropped (by the exchange or
# the network): a death with no `SocketDead` (that one goes through CLOSING, as does a
# requested close; a failed dial never was open).
_DROPPED_FROM = frozenset(
    {SessionState.AUTHENTICATING, SessionState.SUBSCRIBING, SessionState.LIVE, SessionState.STALE}
)


def reason_label(reason: str) -> str:
    """A bounded label from a free-form reason: its first lowercase word, at most 32 chars."""
    match = _REASON_WORD.search(reason.lower())
    return match.group(0)[:32] if match else "unknown"


class ServiceMetrics:
    """The registry of one stack; see the module docstring."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._clock = clock
        self._stream: Any = None
        self._protection: Any = None
        self._rest: list[RestMetrics] = []
        r = self.registry
        self._declare_counters(r)
        self._declare_histograms(r)
        r.register(_StatusCollector(self))

    def _declare_counters(self, r: CollectorRegistry) -> None:
        self.events = Counter(f"{PREFIX}_core_events", "core events by type", ["type"], registry=r)
        self.reconnects = Counter(
            f"{PREFIX}_socket_deaths",
            "sockets that died (each is followed by a reconnect), by socket and reason",
            ["socket", "reason"],
            registry=r,
        )
        self.switches = Counter(
            f"{PREFIX}_failover_switches",
            "feed mode switches by scope kind (account or symbol) and new mode",
            ["scope", "to"],
            registry=r,
        )
        self.alerts = Counter(
            f"{PREFIX}_alerts",
            "alerts raised or cleared, by name and severity",
            ["name", "severity", "action"],
            registry=r,
        )
        self.divergences = Counter(
            f"{PREFIX}_divergences",
            "hybrid vs REST divergences seen in parallel mode, by kind and severity",
            ["kind", "severity"],
            registry=r,
        )

    def _declare_histograms(self, r: CollectorRegistry) -> None:
        self.latency_exchange = Histogram(
            f"{PREFIX}_event_latency_exchange_seconds",
            "position event emission minus the exchange timestamp of its message",
            ["source"],
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.latency_receipt = Histogram(
            f"{PREFIX}_event_latency_receipt_seconds",
            "position event delivery to listeners minus the receipt of its frame",
            ["source"],
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )

    def bind(
        self,
        stream: Any = None,
        protection: Any = None,
        rest: Iterable[RestMetrics] = (),
    ) -> None:
        """What the scrape-time collector reads (any may be left out)."""
        self._stream = stream
        self._protection = protection
        self._rest = list(rest)

    def on_event(self, event: CoreEvent) -> None:
        """A `PositionStream` listener."""
        kind = getattr(event, "kind", None)
        name = f"position_{kind}" if isinstance(kind, str) else _snake(type(event).__name__)
        self.events.labels(name).inc()
        if isinstance(event, MarkUpdated | PositionEvent):
            self._observe_latency(event)
        elif isinstance(event, SocketDead):
            self._death(event.connection, event.reason)
        elif isinstance(event, StateChanged):
            if event.new is SessionState.DISCONNECTED and event.old in _DROPPED_FROM:
                self._death(event.connection, event.reason)
        elif isinstance(event, FailoverSwitched):
            scope = "account" if event.scope == "account" else "symbol"
            self.switches.labels(scope, event.new.value).inc()
        elif isinstance(event, AlertRaised):
            self.alerts.labels(event.name, event.severity.value, "raised").inc()
        elif isinstance(event, AlertCleared):
            self.alerts.labels(event.name, event.severity.value, "cleared").inc()
        elif isinstance(event, Divergence):
            self.divergences.labels(event.kind, event.severity.value).inc()

    def _death(self, connection: str, reason: str) -> None:
        self.reconnects.labels(_socket_label(connection), reason_label(reason)).inc()

    def _observe_latency(self, event: PositionEvent) -> None:
        view = event.view
        now = self._clock()
        source = str(view.source)
        if view.exchange_ts_ms is not None:
            self.latency_exchange.labels(source).observe(max(0.0, now - view.exchange_ts_ms / 1000))
        if view.received_at:
            self.latency_receipt.labels(source).observe(max(0.0, now - view.received_at))

    def render(self) -> bytes:
        """The Prometheus text exposition of this registry."""
        return generate_latest(self.registry)


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _socket_label(name: str) -> str:
    return name if re.fullmatch(r"[a-z]+(-[0-9]+)?", name) else "other"


class _StatusCollector(Collector):
    """Reads the stream's and protection's status at scrape time."""

    def __init__(self, owner: ServiceMetrics) -> None:
        self._owner = owner

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        owner = self._owner
        if owner._stream is not None:
            stream = owner._stream
            status = stream.get_status()
            yield from _stream_metrics(stream.get_stats(), status)
            yield from bus_metrics(status.get("bus"))
        if owner._protection is not None:
            yield from _protection_metrics(owner._protection.status())
        yield from _rest_metrics(owner._rest)


def _stream_metrics(stats: dict[str, Any], status: dict[str, Any]) -> Iterator[Metric]:
    p = PREFIX
    state = GaugeMetricFamily(
        f"{p}_connection_state", "1 for each socket's current state", labels=["socket", "state"]
    )
    subs = GaugeMetricFamily(
        f"{p}_subscriptions",
        "topics per socket by state (pending, confirmed, failed)",
        labels=["socket", "state"],
    )
    for name, sock in sorted(_sockets(status).items()):
        label = _socket_label(name)
        current = str(sock.get("state", "disconnected"))
        for s in SessionState:
            state.add_metric([label, s.value], 1.0 if s.value == current else 0.0)
        failed = sock.get("failed") or {}
        subs.add_metric([label, "pending"], float(sock.get("pending", 0)))
        subs.add_metric([label, "confirmed"], float(sock.get("confirmed", 0)))
        subs.add_metric([label, "failed"], float(len(failed)))
    yield state
    yield subs
    yield from _stream_counters(stats)
    yield from _book_gauges(status)
    yield from _rollout_metrics(stats, status)


def _stream_counters(stats: dict[str, Any]) -> Iterator[Metric]:
    """Frames received, position events emitted, reconnections."""
    p = PREFIX
    messages = CounterMetricFamily(f"{p}_messages", "frames received by type", labels=["type"])
    messages.add_metric(["position"], float(stats.get("position_updates", 0)))
    messages.add_metric(["ticker"], float(stats.get("ticker_updates", 0)))
    messages.add_metric(["bad"], float(stats.get("bad_frames", 0)))
    messages.add_metric(["ignored"], float(stats.get("ignored_frames", 0)))
    yield messages
    emitted = CounterMetricFamily(
        f"{p}_position_events", "position events emitted to handlers (seed: combined_events)"
    )
    emitted.add_metric([], float(stats.get("combined_events", 0)))
    yield emitted
    reconnects = CounterMetricFamily(f"{p}_reconnections", "reconnections of all sockets")
    reconnects.add_metric([], float(stats.get("reconnections", 0)))
    yield reconnects


def _book_gauges(status: dict[str, Any]) -> Iterator[Metric]:
    """Each open position's mark age, and how many are open."""
    p = PREFIX
    ages = GaugeMetricFamily(
        f"{p}_mark_age_seconds", "age of each open position's mark", labels=["symbol"]
    )
    open_positions = 0
    for position in status.get("positions", []):
        open_positions += 1
        age = position.get("mark_age_s")
        if age is not None:
            ages.add_metric([str(position.get("symbol"))], float(age))
    yield ages
    opened = GaugeMetricFamily(f"{p}_open_positions", "open positions in the book")
    opened.add_metric([], float(open_positions))
    yield opened


def _rollout_metrics(stats: dict[str, Any], status: dict[str, Any]) -> Iterator[Metric]:
    """The mode and feed, failover, active alerts and handler errors."""
    p = PREFIX
    mode = GaugeMetricFamily(
        f"{p}_mode", "1 for the configured mode and the account feed mode", labels=["mode", "feed"]
    )
    mode.add_metric([str(status.get("mode", stats.get("mode", ""))), feed_mode(stats, status)], 1.0)
    yield mode
    polling = GaugeMetricFamily(f"{p}_polling_symbols", "symbols fed by REST polling now")
    polling.add_metric([], float(stats.get("polling_symbols", 0)))
    yield polling
    fallback = CounterMetricFamily(
        f"{p}_fallback_switches", "failover switches by direction", labels=["to"]
    )
    fallback.add_metric(["polling"], float(stats.get("failover_to_polling", 0)))
    fallback.add_metric(["streaming"], float(stats.get("failover_to_streaming", 0)))
    yield fallback
    active = GaugeMetricFamily(f"{p}_alerts_active", "active alerts", labels=["severity"])
    active.add_metric(["warning"], float(stats.get("alerts_active_warning", 0)))
    active.add_metric(["critical"], float(stats.get("alerts_active_critical", 0)))
    yield active
    handler = CounterMetricFamily(f"{p}_handler_errors", "event_handler calls that raised")
    handler.add_metric([], float(stats.get("handler_errors", 0)))
    yield handler
    yield _reconcile_counter(stats)


# get_stats() key -> `outcome` label of reconcile_keys_total (issue 19 F1's confirmation).
_RECONCILE_OUTCOMES = (
    ("reconcile_misses", "missed"),
    ("reconcile_misses_withdrawn", "withdrawn"),
    ("reconcile_closes", "closed"),
)


def _reconcile_counter(stats: dict[str, Any]) -> Metric:
    """Keys a complete listing missed, misses withdrawn, keys closed on absence alone."""
    family = CounterMetricFamily(
        f"{PREFIX}_reconcile_keys",
        "keys a position/list answer left out, by outcome (missed, withdrawn, closed)",
        labels=["outcome"],
    )
    for key, outcome in _RECONCILE_OUTCOMES:
        family.add_metric([outcome], float(stats.get(key, 0)))
    return family


def feed_mode(stats: dict[str, Any], status: dict[str, Any]) -> str:
    """The account's feed: the failover's mode where there is one; else `rest` where REST
    drives the events (rest, canary, parallel), `streaming` for a plain hybrid stream."""
    account = stats.get("account_mode")
    if account is not None:
        return str(account)
    driver = status.get("driver", "rest" if status.get("mode") == "rest" else "hybrid")
    return "rest" if driver == "rest" else "streaming"


def _sockets(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    sockets = status.get("sockets")
    if isinstance(sockets, dict):
        return sockets
    hybrid = status.get("hybrid")
    if isinstance(hybrid, dict) and isinstance(hybrid.get("sockets"), dict):
        return dict(hybrid["sockets"])
    return {}


def _protection_metrics(status: dict[str, Any]) -> Iterator[Metric]:
    p = PREFIX
    trailing = CounterMetricFamily(
        f"{p}_trailing_actions", "trailing-stop actions by kind", labels=["action"]
    )
    for key in ("stops_sent", "not_modified", "retries", "failures", "closes", "monitor_only"):
        trailing.add_metric([key], float(status["trailing"].get(key, 0)))
    yield trailing
    aged = CounterMetricFamily(
        f"{p}_aged_actions", "aged-monitor actions by kind", labels=["action"]
    )
    for key in ("closes", "already_gone", "close_failures", "monitor_only"):
        aged.add_metric([key], float(status["aged"].get(key, 0)))
    yield aged
    phases = GaugeMetricFamily(
        f"{p}_trailing_positions", "protected positions by trail phase", labels=["phase"]
    )
    counts: dict[str, int] = {}
    for position in status.get("positions", []):
        phase = str(position.get("trail_phase") or "none")
        counts[phase] = counts.get(phase, 0) + 1
    for phase, count in sorted(counts.items()):
        phases.add_metric([phase], float(count))
    yield phases


def _rest_metrics(clients: list[RestMetrics]) -> Iterator[Metric]:
    calls = CounterMetricFamily(
        f"{PREFIX}_rest_calls",
        "REST answers by endpoint and retCode",
        labels=["endpoint", "ret_code"],
    )
    errors = CounterMetricFamily(
        f"{PREFIX}_rest_transport_errors", "REST calls without a Bybit answer", labels=["endpoint"]
    )
    responses: dict[tuple[str, int], int] = {}
    failed: dict[str, int] = {}
    for metrics in clients:
        for (endpoint, code), count in metrics.responses.items():
            responses[(endpoint, code)] = responses.get((endpoint, code), 0) + count
        for endpoint, count in metrics.transport_errors.items():
            failed[endpoint] = failed.get(endpoint, 0) + count
    for (endpoint, code), count in sorted(responses.items()):
        calls.add_metric([endpoint, str(code)], float(count))
    for endpoint, count in sorted(failed.items()):
        errors.add_metric([endpoint], float(count))
    yield calls
    yield errors


def health(status: dict[str, Any], mark_stale_s: float) -> tuple[bool, list[str]]:
    """(healthy, reasons): healthy when every open position has a mark younger than the limit."""
    reasons: list[str] = []
    if not status.get("running", True):
        reasons.append("stream not running")
    for position in status.get("positions", []):
        name = f"{position.get('symbol')}/{position.get('position_idx')}"
        age = position.get("mark_age_s")
        if age is None:
            reasons.append(f"{name}: no mark yet")
        elif float(age) > mark_stale_s:
            reasons.append(f"{name}: mark is {float(age):.1f}s old (limit {mark_stale_s:g}s)")
    return not reasons, reasons
