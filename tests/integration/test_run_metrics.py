"""`run --metrics-port 0` against the simulator: /metrics, /health and /status over real HTTP.

Also the canary: at debug level, no output (stdout, stderr, /metrics, /status) ever holds the
API secret or a request signature.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bybit_hybrid.sim import SimServer
from tests.integration.stream_harness import sim_config
from tests.support import UNIT_S, wait_for

CANARY_SECRET = "CANARYsecret0123456789zz"
SIGNATURE = re.compile(r"\b[0-9a-f]{64}\b")


@pytest.fixture
async def sim() -> AsyncIterator[SimServer]:
    async with SimServer(sim_config(api_secret=CANARY_SECRET)) as server:
        yield server


async def _get(session: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with session.get(url) as response:
        return response.status, await response.text()


async def test_run_serves_metrics_health_and_status(sim: SimServer, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "BYBIT_API_KEY": sim.api_key,
        "BYBIT_API_SECRET": sim.api_secret,
        "BYBIT_HYBRID_STATE_DB": str(tmp_path / "state.sqlite3"),
        # A mark is stale after 1 s; REST polling (every 30 s) cannot hide a muted ticker.
        "BYBIT_HYBRID_ROLLOUT_MARK_STALE_S": "1",
        "BYBIT_HYBRID_REST_POLL_FAST_S": "30",
        "BYBIT_HYBRID_REST_POLL_SLOW_S": "60",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bybit_hybrid", "run", "--base-url", sim.base_url,
        "--metrics-port", "0", "--log-level", "DEBUG", "--log-format", "json",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert proc.stdout is not None
    scraped: list[str] = []
    try:
        first = await asyncio.wait_for(proc.stdout.readline(), 10 * UNIT_S)
        match = re.fullmatch(r"metrics on (http://127\.0\.0\.1:\d+)\n", first.decode())
        assert match, first
        base = match.group(1)
        async with aiohttp.ClientSession() as session:
            health: dict[str, Any] = {}

            async def healthy() -> bool:
                status, body = await _get(session, f"{base}/health")
                health["last"] = (status, body)
                return status == 200 and '"ok"' in body

            async def both_marked() -> bool:
                status, body = await _get(session, f"{base}/status")
                return status == 200 and body.count('"mark_age_s"') >= 2

            await wait_for(both_marked, 10 * UNIT_S, "both positions with a mark in /status")
            await wait_for(healthy, 5 * UNIT_S, "/health 200")

            async def ticker_marks() -> bool:
                status, body = await _get(session, f"{base}/metrics")
                return (
                    status == 200
                    and 'bybit_hybrid_mode{feed="streaming",mode="hybrid"} 1.0' in body
                    and bool(re.search(r'_receipt_seconds_count\{source="ticker"\} [1-9]', body))
                )

            await wait_for(
                ticker_marks, 5 * UNIT_S, "streaming, and ticker marks counted in /metrics"
            )
            status, metrics = await _get(session, f"{base}/metrics")
            assert status == 200
            scraped.append(metrics)
            assert 'bybit_hybrid_connection_state{socket="private",state="live"} 1.0' in metrics
            assert 'bybit_hybrid_subscriptions{socket="public-1",state="confirmed"} 2.0' in metrics
            assert re.search(
                r'bybit_hybrid_core_events_total\{type="position_mark"\} [1-9]', metrics
            )
            assert 'bybit_hybrid_mark_age_seconds{symbol="BTCUSDT"}' in metrics
            assert 'bybit_hybrid_core_events_total{type="state_changed"}' in metrics
            assert "bybit_hybrid_event_latency_exchange_seconds_bucket{" in metrics
            assert re.search(
                r'bybit_hybrid_rest_calls_total\{endpoint="[^"]+",ret_code="0"\}', metrics
            )
            assert 'bybit_hybrid_mode{feed="streaming",mode="hybrid"} 1.0' in metrics
            assert 'bybit_hybrid_trailing_actions_total{action="stops_sent"} 0.0' in metrics
            assert 'bybit_hybrid_aged_actions_total{action="closes"} 0.0' in metrics

            status, body = await _get(session, f"{base}/status")
            scraped.append(body)
            assert '"mode": "hybrid"' in body and '"protection": {' in body

            sim.faults.mute("BTCUSDT")

            async def stale() -> bool:
                status, body = await _get(session, f"{base}/health")
                health["last"] = (status, body)
                return status == 503 and "BTCUSDT/0" in body

            await wait_for(stale, 10 * UNIT_S, "/health 503 for the muted BTCUSDT")
            status, metrics = await _get(session, f"{base}/metrics")
            scraped.append(metrics)
            status, body = await _get(session, f"{base}/status")
            scraped.append(body)
        proc.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(proc.communicate(), 10 * UNIT_S)
        assert proc.returncode == 0, err.decode()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    outputs = [first.decode(), out.decode(), err.decode(), *scraped]
    assert '"level": "debug"' in err.decode()  # debug logging really was on
    for text in outputs:
        assert CANARY_SECRET not in text
        assert not SIGNATURE.search(text)
