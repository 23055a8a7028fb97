"""The account worker's bus metrics in `/metrics` (docs/operations.md, "Bus metrics"): every
documented one has a sample of the documented type, the values follow the bus (connected,
marks, events, then an outage: disconnected, fallback, a failover), and the URL's password
never appears."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from bybit_hybrid.service.settings import load_settings
from bybit_hybrid.service.stack import RunStack
from tests.docs.markdown import ROOT
from tests.integration.bus_harness import BusRig
from tests.support import UNIT_S, wait_for

OPERATIONS = ROOT / "docs" / "operations.md"
PREFIX = "bybit_hybrid_"


def documented_bus_metrics() -> dict[str, str]:
    """name -> type, from the table under `## Bus metrics`."""
    text = OPERATIONS.read_text(encoding="utf-8")
    section = text.split("## Bus metrics", 1)[1].split("\n## ", 1)[0]
    found = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 4 and cells[0].startswith("`bus_"):
            found[cells[0].strip("`")] = cells[1]
    assert len(found) >= 10, "the bus metrics table was not found"
    return found


def _scrape(stack: RunStack) -> dict[str, tuple[str, float]]:
    """Documented-style name (counters with `_total`) -> (type, value) of the bus metrics."""
    out = {}
    for family in text_string_to_metric_families(stack.metrics.render().decode()):
        name = family.name.removeprefix(PREFIX)
        if not name.startswith("bus_") or name.endswith("_created"):
            continue
        if family.type == "counter":
            name += "_total"
        values = [s.value for s in family.samples if not s.name.endswith("_created")]
        out[name] = (family.type, values[0] if values else float("nan"))
    return out


def _value(stack: RunStack, name: str) -> float:
    return _scrape(stack).get(name, ("", float("nan")))[1]


async def test_the_worker_exposes_every_documented_bus_metric_and_they_follow_the_bus(
    rig: BusRig, tmp_path: Path
) -> None:
    url = rig.url.replace("nats://", "nats://metrics:s3cr3t-pw@")  # no auth on the server
    settings = load_settings(
        None,
        {
            "bus_url": url,
            "bus_account": "alice",
            "bus_stale_after_s": 1.5 * UNIT_S,
            "state_db": tmp_path / "state.sqlite3",
            "aged_max_age_h": 1000.0,
        },
    )
    await rig.hub()
    sim = rig.sim
    stack = RunStack(settings, sim.api_key, sim.api_secret, {"base_url": sim.base_url})
    await stack.start()
    try:
        await stack.stream.wait_ready(5 * UNIT_S)
        await wait_for(lambda: _value(stack, "bus_marks_received_total") >= 1, 5 * UNIT_S, "marks")
        await wait_for(
            lambda: _value(stack, "bus_position_events_published_total") >= 2, 5 * UNIT_S, "opens"
        )
        scraped = _scrape(stack)
        problems: list[Any] = []
        for name, kind in documented_bus_metrics().items():
            if name not in scraped:
                problems.append(f"{name}: no sample")
            elif scraped[name][0] != kind:
                problems.append(f"{name}: documented {kind}, exposed {scraped[name][0]}")
        problems += [
            f"{n}: exposed, not documented"
            for n in scraped.keys() - documented_bus_metrics().keys()
        ]
        assert not problems, problems
        assert scraped["bus_connected"][1] == 1 and scraped["bus_fallback"][1] == 0
        assert scraped["bus_mark_subjects"][1] == 2  # BTCUSDT, ETHUSDT
        assert 0 <= scraped["bus_hub_heartbeat_age_seconds"][1] < 1.5 * UNIT_S
        assert "s3cr3t-pw" not in stack.metrics.render().decode()
        # The bus goes away: disconnected, then the fallback and one failover.
        await rig.nats_server.stop()
        await wait_for(lambda: _value(stack, "bus_fallback") == 1, 8 * UNIT_S, "fallback")
        assert _value(stack, "bus_connected") == 0
        assert _value(stack, "bus_failovers_total") == 1
        assert _value(stack, "bus_hub_heartbeat_age_seconds") >= 1.5 * UNIT_S
    finally:
        await stack.stop()
