"""What the docs name exists in the product (issue 18 item 7): every `BYBIT_HYBRID_*`
variable is a setting, every event field of docs/events.md is in a real event (and in its
JSON examples), every `get_stats()` key of docs/rollout.md is in a running stream's stats,
and every flag of README's command table is a flag of that command. The names are read from
the Markdown; the product side is observed on the simulator."""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bybit_hybrid import BybitHybridStream
from bybit_hybrid.service.cli import build_parser
from bybit_hybrid.service.settings import AppSettings
from bybit_hybrid.service.streams import rollout_stream
from bybit_hybrid.sim import SimConfig, SimServer
from tests.docs.markdown import ROOT, blocks, documents
from tests.support import UNIT_S, wait_for

EVENTS = ROOT / "docs" / "events.md"
ROLLOUT = ROOT / "docs" / "rollout.md"
README = ROOT / "README.md"
# Variables of the test harness, documented for contributors, not settings of the product.
_NOT_SETTINGS = {"BYBIT_HYBRID_TEST_UNIT_S"}


@pytest.fixture
async def sim() -> AsyncIterator[SimServer]:
    async with SimServer(SimConfig(symbols=5, positions=2, seed=1, rate_hz=10.0)) as server:
        yield server


def test_every_documented_variable_is_a_setting() -> None:
    settings = {f"BYBIT_HYBRID_{name.upper()}" for name in AppSettings.model_fields}
    bad = []
    for path in documents():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for name in re.findall(r"\bBYBIT_HYBRID_[A-Z0-9_]*[A-Z0-9]\b", line):
                if name not in settings | _NOT_SETTINGS:
                    bad.append(f"{path.relative_to(ROOT)}:{number}: {name}")
    assert not bad, "documented variables that are no setting:\n" + "\n".join(bad)


def documented_event_fields() -> set[str]:
    """The keys of the `data` table in docs/events.md."""
    section = EVENTS.read_text(encoding="utf-8").split("## `data`", 1)[1].split("\n## ", 1)[0]
    keys: set[str] = set()
    for line in section.splitlines():
        cells = line.strip().strip("|").split("|")
        if line.startswith("| `"):
            keys.update(re.findall(r"`([a-z_]+)`", cells[0]))
    assert len(keys) > 10, f"{EVENTS}: the data table was not found"
    return keys


def test_the_json_examples_carry_exactly_the_documented_fields() -> None:
    fields = documented_event_fields()
    examples = [b for b in blocks(EVENTS) if b.lang == "json"]
    assert examples, f"{EVENTS}: no JSON example"
    for block in examples:
        for number, line in enumerate(block.text.splitlines(), block.line + 1):
            event = json.loads(line)
            where = f"{EVENTS.relative_to(ROOT)}:{number}"
            assert set(event) == {"event", "exchange", "data"}, where
            assert set(event["data"]) == fields, f"{where}: {set(event['data']) ^ fields}"


async def test_a_real_event_carries_exactly_the_documented_fields(sim: SimServer) -> None:
    seen: list[dict[str, Any]] = []

    async def handler(event: str, payload: dict[str, Any]) -> None:
        seen.append({"event": event, **payload})

    stream = BybitHybridStream(sim.api_key, sim.api_secret, handler, base_url=sim.base_url)
    await stream.start()
    try:
        await wait_for(lambda: bool(seen), 10 * UNIT_S, "a position event")
    finally:
        await stream.stop()
    fields = documented_event_fields()
    assert seen[0]["event"] == "position_update" and seen[0]["exchange"] == "bybit"
    assert set(seen[0]) == {"event", "exchange", "data"}
    assert set(seen[0]["data"]) == fields, set(seen[0]["data"]) ^ fields


def documented_stats_keys() -> tuple[list[str], list[str]]:
    """(keys of every rollout stream with a failover, keys of parallel mode) in rollout.md."""
    text = ROLLOUT.read_text(encoding="utf-8")
    paragraph = text.split("`get_stats()` adds flat counters for metrics:", 1)[1].split("\n\n")[0]
    common, _, parallel = paragraph.partition("in parallel mode")
    return re.findall(r"`([a-z_]+)`", common), re.findall(r"`([a-z_]+)`", parallel)


@pytest.mark.parametrize("mode", ["hybrid", "parallel"])
async def test_the_documented_stats_keys_are_there(sim: SimServer, mode: str) -> None:
    common, parallel = documented_stats_keys()
    stream = rollout_stream(mode, sim.api_key, sim.api_secret, base_url=sim.base_url)
    await stream.start()
    try:
        await stream.wait_ready(10 * UNIT_S)
        stats = stream.get_stats()
    finally:
        await stream.stop()
    failover_only = {
        "account_mode",
        "polling_symbols",
        "failover_to_polling",
        "failover_to_streaming",
    }
    wanted = set(common) | (set(parallel) if mode == "parallel" else set())
    if mode == "parallel":  # REST drives: no failover (docs/rollout.md says so)
        wanted -= failover_only
    missing = sorted(wanted - set(stats))
    assert not missing, f"{ROLLOUT.relative_to(ROOT)}: {mode} get_stats() lacks {missing}"


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_flag_of_the_command_table_exists() -> None:
    commands = _subcommands()
    bad = []
    for number, line in enumerate(README.read_text(encoding="utf-8").splitlines(), 1):
        match = re.match(r"\| `bybit-hybrid (\w+)([^`]*)`", line)
        if match is None:
            continue
        name, synopsis = match.groups()
        if name not in commands:
            bad.append(f"README.md:{number}: no command {name!r}")
            continue
        known = {s for a in commands[name]._actions for s in a.option_strings}
        bad += [
            f"README.md:{number}: `{name}` has no flag {flag}"
            for flag in re.findall(r"--[a-z][a-z-]*", synopsis)
            if flag not in known
        ]
    assert not bad, "\n".join(bad)
