"""`bybit-hybrid stream --mode ...` as a user runs it, for every mode; parallel prints a summary."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bybit_hybrid.sim import SimConfig, SimServer
from tests.integration.cli_support import clean_env, run_cli
from tests.support import UNIT_S


@pytest.fixture
async def sim() -> AsyncIterator[SimServer]:
    async with SimServer(SimConfig(symbols=4, positions=2, seed=5)) as server:
        yield server


async def _stream(sim: SimServer, cwd: Path, *args: str) -> tuple[int, str, str]:
    env = clean_env(
        BYBIT_API_KEY=sim.api_key,
        BYBIT_API_SECRET=sim.api_secret,
        BYBIT_HYBRID_REST_POLL_FAST_S="0.3",
        BYBIT_HYBRID_REST_POLL_SLOW_S="0.6",
    )
    return await run_cli(
        cwd, env, "stream", "--base-url", sim.base_url, "--duration", str(1.5 * UNIT_S), *args
    )


# Each mode's ACTUAL sources: REST-driven modes only ever show `rest`; the streaming modes must
# show `ticker` events (marks from the public socket), or the sockets were never used.
MODES = [
    (("--mode", "rest"), {"rest"}),
    (("--mode", "canary"), {"rest"}),
    (("--mode", "parallel", "--json"), {"rest"}),
    (("--mode", "hybrid"), {"rest", "ticker"}),
    (("--mode", "cutover", "--cutover-pct", "100"), {"rest", "ticker"}),
]


def _sources(out: str) -> set[str]:
    lines = [json.loads(line) for line in out.splitlines()]
    assert lines and all(line["event"] == "position_update" for line in lines)
    return {line["data"]["source"] for line in lines}


@pytest.mark.parametrize(
    ("args", "sources"), MODES, ids=lambda v: " ".join(v) if isinstance(v, tuple) else None
)
async def test_every_mode_streams_contract_lines_from_its_own_sources(
    sim: SimServer, tmp_path: Path, args: tuple[str, ...], sources: set[str]
) -> None:
    code, out, err = await _stream(sim, tmp_path, "--json", *args)
    assert code == 0, err
    seen = _sources(out)
    # Opens come from the REST bootstrap in every mode; beyond that, exactly the mode's feeds.
    assert seen == sources, f"{args}: sources {sorted(seen)}, expected {sorted(sources)}"
    lines = [json.loads(line) for line in out.splitlines()]
    assert {line["data"]["symbol"] for line in lines} == {
        p.symbol for p in sim.exchange.open_positions()
    }


@pytest.mark.parametrize("mode", ["hybrid", "cutover"])
async def test_a_streaming_mode_with_every_websocket_refused_shows_no_ticker_source(
    sim: SimServer, tmp_path: Path, mode: str
) -> None:
    """The check above can fail: with every upgrade refused, REST carries the whole run (the
    old test, `sources <= {rest, ticker}`, passed like this)."""
    sim.faults.refuse_connections(60 * UNIT_S)
    extra = ("--cutover-pct", "100") if mode == "cutover" else ()
    code, out, err = await _stream(sim, tmp_path, "--json", "--mode", mode, *extra)
    assert code == 0, err
    assert _sources(out) == {"rest"}


async def test_parallel_prints_the_comparison_summary(sim: SimServer, tmp_path: Path) -> None:
    code, out, err = await _stream(sim, tmp_path, "--mode", "parallel")
    assert code == 0, err
    summary = out[out.index("parallel comparison summary") :]
    assert "mark_comparisons:" in summary and "mark_criticals: 0" in summary
    assert "first_seen: rest=" in summary and "one_sided: rest=0, hybrid=0" in summary
    # With --json, stdout stays pure JSON lines and the summary goes to stderr.
    code, out, err = await _stream(sim, tmp_path, "--mode", "parallel", "--json")
    assert code == 0, err
    assert all(json.loads(line)["event"] == "position_update" for line in out.splitlines())
    assert "parallel comparison summary" in err


async def test_a_bad_mode_from_the_environment_is_a_one_line_error(
    sim: SimServer, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text("BYBIT_HYBRID_MODE=sideways\n")
    code, _, err = await _stream(sim, tmp_path)
    assert code == 2
    assert err.startswith("bybit-hybrid: error: setting mode") and err.count("\n") == 1
