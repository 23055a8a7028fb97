"""Reaction time of the trailing stop: from the mark frame that moves a trail to the trading-stop
request leaving the process, and to the simulator receiving it. Prints p50/p99/max.

    .venv/bin/python bench/reaction_time.py [--samples 300] [--interval-ms 110]

Everything runs in one process against the embedded simulator on 127.0.0.1, with one clock
(`time.perf_counter`). Each sample raises BTCUSDT's mark (and last) by a few ticks on a paused
walk; the trail (activation already reached, no minimum interval or improvement) then wants a
tighter stop. Stamps per sample:

    frame     the public socket handed the ticker frame to the stream (WS backend wrapper)
    router    the router received the MarkUpdated (core decode + merge done)
    decided   the trailing worker is about to call REST (router -> manager -> trailing)
    leaves    the HTTP backend got the signed request (what goes to the socket next)
    sim       the simulator's trading-stop handler ran (request parsed on the server side)

Samples are paced at `--interval-ms` (default 110 ms) so Bybit's 10 requests/s per account is
never the bottleneck: this measures the path, not the rate limiter.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import sys
import tempfile
import time
from collections.abc import Mapping
from decimal import ROUND_FLOOR, Decimal
from pathlib import Path
from typing import Any

from bybit_hybrid import BybitHybridStream
from bybit_hybrid.protection.store import ProtectionStore
from bybit_hybrid.protection.unified import UnifiedProtection
from bybit_hybrid.router.router import percentile
from bybit_hybrid.service.settings import load_settings
from bybit_hybrid.sim import SimConfig, SimServer
from bybit_hybrid.transport.http import AiohttpBackend, HttpResponse
from bybit_hybrid.transport.rest import BybitRestClient
from bybit_hybrid.transport.ws import AiohttpWsBackend, WsConnection
from bybit_hybrid.wire.signing import Credentials

SYMBOL = "BTCUSDT"
TICK = Decimal("0.10")
_MARK_RE = re.compile(r'"markPrice":"([0-9.]+)"')


class StampedWs:
    """WS backend wrapper: stamps every BTCUSDT ticker frame with its mark on arrival."""

    def __init__(self) -> None:
        self.inner = AiohttpWsBackend()
        self.frames: dict[str, float] = {}

    async def connect(self, url: str, *, timeout_s: float) -> WsConnection:
        return _StampedConnection(await self.inner.connect(url, timeout_s=timeout_s), self)

    async def aclose(self) -> None:
        await self.inner.aclose()


class _StampedConnection:
    def __init__(self, conn: WsConnection, owner: StampedWs) -> None:
        self._conn = conn
        self._owner = owner

    async def send_str(self, data: str) -> None:
        await self._conn.send_str(data)

    async def receive(self) -> str | bytes:
        data = await self._conn.receive()
        at = time.perf_counter()
        if isinstance(data, str) and SYMBOL in data:
            match = _MARK_RE.search(data)
            if match:
                self._owner.frames.setdefault(match[1], at)
        return data

    async def close(self) -> None:
        await self._conn.close()


class StampedHttp:
    """HTTP backend wrapper: stamps each trading-stop request (by its stopLoss) as it leaves."""

    def __init__(self) -> None:
        self.inner = AiohttpBackend()
        self.leaves: dict[str, float] = {}

    async def request(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None
    ) -> HttpResponse:
        if body is not None and url.endswith("/trading-stop"):
            self.leaves[json.loads(body)["stopLoss"]] = time.perf_counter()
        return await self.inner.request(method, url, headers, body)

    async def close(self) -> None:
        await self.inner.close()


def stamp_sim_receipts(sim: SimServer) -> dict[str, float]:
    received: dict[str, float] = {}
    original = sim.exchange.trading_stop

    def trading_stop(params: Mapping[str, Any], now_ms: int, raw_body: str = "") -> Any:
        received[str(params.get("stopLoss"))] = time.perf_counter()
        return original(params, now_ms, raw_body)

    sim.exchange.trading_stop = trading_stop  # type: ignore[method-assign]
    return received


def stop_for(mark: Decimal) -> str:
    return str((mark * Decimal("0.995") / TICK).to_integral_value(ROUND_FLOOR) * TICK)


async def measure(samples: int, interval_s: float, db: Path) -> dict[str, list[float]]:
    sim = SimServer(SimConfig(symbols=3, positions=0, rate_hz=10.0))
    sim_received = stamp_sim_receipts(sim)  # before start: the routes bind the handler then
    async with sim:
        sim.pause_ticks(SYMBOL)
        await sim.open_position(SYMBOL, "Buy", Decimal("0.001"))
        entry = sim.exchange.positions[(SYMBOL, 0)].avg_price
        ws, http = StampedWs(), StampedHttp()
        settings = load_settings(
            overrides={
                "state_db": db,
                "trailing_min_update_interval_s": 0,
                "trailing_min_improvement_pct": 0,
            }
        )
        stream = BybitHybridStream(
            sim.api_key,
            sim.api_secret,
            base_url=sim.base_url,
            ws_backend=ws,
            rng=random.Random(1),
        )
        creds = Credentials(sim.api_key, sim.api_secret)
        rest = BybitRestClient(sim.base_url, creds, backend=http, max_retries=0, limits_per_s={})
        store = ProtectionStore(db)
        protection = UnifiedProtection(settings, rest, store=store)
        protection.attach(stream)
        await protection.start()
        await stream.start()
        await stream.wait_ready(10)
        # Reach activation first; the samples then trail upwards.
        mark = (entry * Decimal("1.03") / TICK).to_integral_value(ROUND_FLOOR) * TICK
        marks: list[Decimal] = []
        try:
            await _wait_tracking(protection, stream)
            for _ in range(samples + 1):
                mark += 20 * TICK
                marks.append(mark)
                await sim.set_prices(SYMBOL, mark=mark, last=mark)
                await _wait(lambda m=mark: stop_for(m) in sim_received, 5.0)
                await asyncio.sleep(interval_s)  # pacing under the 10 req/s limit, not a wait
        finally:
            await stream.stop()
            await protection.stop()
            await rest.close()
            await http.close()
            await ws.aclose()
            store.close()
        decided = {r.stop_price: r for r in protection.trailing.sends}
        result: dict[str, list[float]] = {k: [] for k in ("router", "decided", "leaves", "sim")}
        for mark in marks[1:]:  # the first one is the activation send
            stop = stop_for(mark)
            frame_at = ws.frames[str(mark)]
            record = decided[stop]
            result["router"].append(record.cause_at_s - frame_at)
            result["decided"].append(record.sent_at_s - frame_at)
            result["leaves"].append(http.leaves[stop] - frame_at)
            result["sim"].append(sim_received[stop] - frame_at)
        return result


async def _wait_tracking(protection: UnifiedProtection, stream: BybitHybridStream) -> None:
    await _wait(lambda: bool(protection.manager.positions()), 5.0)
    await _wait(lambda: stream.get_stats()["subscribed_tickers"] >= 1, 5.0)


async def _wait(condition: Any, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the stop did not arrive")
        await asyncio.sleep(0.0005)


def print_table(result: dict[str, list[float]]) -> None:
    labels = {
        "router": "frame -> router receipt",
        "decided": "frame -> trailing calls REST",
        "leaves": "frame -> request leaves (HTTP)",
        "sim": "frame -> simulator receives",
    }
    print(f"{'stage':<32} {'n':>5} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for key, label in labels.items():
        values = result[key]
        p50, p99 = percentile(values, 50) * 1000, percentile(values, 99) * 1000
        print(f"{label:<32} {len(values):>5} {p50:>8.3f} {p99:>8.3f} {max(values) * 1000:>8.3f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--interval-ms", type=float, default=110.0)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        result = asyncio.run(measure(args.samples, args.interval_ms / 1000, Path(tmp) / "b.db"))
    print_table(result)
    leaves_p99_ms = percentile(result["leaves"], 99) * 1000
    print(f"\ntarget p99 < 5 ms (frame -> request leaves): {leaves_p99_ms:.3f} ms", end=" ")
    print("OK" if leaves_p99_ms < 5 else "MISSED")
    return 0


if __name__ == "__main__":
    sys.exit(main())
