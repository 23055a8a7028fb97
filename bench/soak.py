"""Soak: the full stack against the simulator (own process) at realistic load, with faults.

    .venv/bin/python bench/soak.py [--minutes 30] [--symbols 100] [--rate 10] [--fault-every 20]

The simulator runs `--symbols` symbols with one open position each, ticking at `--rate` Hz. Here
runs what `bybit-hybrid run` runs: the stream in hybrid mode (RolloutStream with REST failover,
built by `make_position_stream`), the event router and unified protection with a tmp SQLite
store. Every `--fault-every` seconds one fault is injected through the simulator's control routes
(socket drops clean and abrupt, silence, malformed frames, unknown topics, REST 10006/5xx,
a private idle cut), and every 5 s one position is closed and reopened.

Each minute (`--row-s` to change) prints one row: RSS, asyncio tasks, open sockets (this
process's socket fds), events and ticker latency (callback time minus the frame's `ts`, ms
resolution, same machine clock) p50/p99/max, reconnections, bad frames and the book size. At the
end it prints growth from the first to the last row; a leak shows as steady growth.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from benchlib import SimProcess, percentile, rss_mb, table

from bybit_hybrid.protection.store import ProtectionStore
from bybit_hybrid.protection.unified import UnifiedProtection
from bybit_hybrid.service.settings import load_settings
from bybit_hybrid.service.streams import make_position_stream
from bybit_hybrid.sim import DEMO_API_KEY, DEMO_API_SECRET
from bybit_hybrid.transport.rest import BybitRestClient
from bybit_hybrid.wire.signing import Credentials

HEADERS = [
    "min",
    "rss MB",
    "tasks",
    "sockets",
    "events",
    "lat p50 ms",
    "lat p99 ms",
    "lat max ms",
    "reconnects",
    "bad frames",
    "faults",
    "book",
]
FAULTS: list[tuple[str, dict[str, Any]]] = [
    ("drop", {"target": "public"}),
    ("drop", {"target": "private", "abrupt": True}),
    ("drop", {"target": "all"}),
    ("silence", {"target": "public"}),
    ("malformed", {"target": "all"}),
    ("unknown_topic", {"target": "public", "topic": "tickers.NOPEUSDT"}),
    ("rest_error", {"mode": "10006", "count": 2}),
    ("rest_error", {"mode": "5xx", "count": 2}),
    ("idle_cut", {"idle_s": 0}),
]


def open_sockets() -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                count += 1
        except OSError:
            pass
    return count


class Meter:
    def __init__(self) -> None:
        self.latencies_ms: list[float] = []
        self.events = 0

    async def handler(self, name: str, payload: dict[str, Any]) -> None:
        self.events += 1
        data = payload["data"]
        if data["source"] == "ticker" and data["exchange_ts"]:
            self.latencies_ms.append(time.time() * 1000 - data["exchange_ts"])

    def take(self) -> tuple[int, list[float]]:
        events, lat = self.events, self.latencies_ms
        self.events, self.latencies_ms = 0, []
        return events, lat


async def chaos(http: aiohttp.ClientSession, url: str, every_s: float, counter: list[int]) -> None:
    rng = random.Random(1)
    while True:
        await asyncio.sleep(every_s)  # the load profile's period, not a wait for logic
        name, body = rng.choice(FAULTS)
        async with http.post(f"{url}/sim/fault/{name}", json=body) as response:
            await response.read()
        counter[0] += 1
        if name == "silence":
            await asyncio.sleep(3)
            async with http.post(f"{url}/sim/fault/clear", json={}) as response:
                await response.read()


async def churn(http: aiohttp.ClientSession, url: str) -> None:
    """Closes and reopens one position every 5 s, so the lifecycle path stays busy."""
    rng = random.Random(2)
    while True:
        await asyncio.sleep(5)
        async with http.get(f"{url}/sim/state") as response:
            state = (await response.json())["result"]
        positions = state["positions"]
        if not positions:
            continue
        row = rng.choice(positions)
        target = {"symbol": row["symbol"], "positionIdx": row["positionIdx"]}
        async with http.post(f"{url}/sim/position/close", json=target) as response:
            await response.read()
        body = {**target, "side": row["side"], "qty": row["size"]}
        async with http.post(f"{url}/sim/position/open", json=body) as response:
            await response.read()


async def soak(args: argparse.Namespace) -> list[list[object]]:
    rows: list[list[object]] = []
    async with SimProcess(args.symbols, args.symbols, args.rate, stamp=False) as sim:
        with tempfile.TemporaryDirectory() as tmp:
            db = Path(tmp) / "soak.sqlite3"
            settings = load_settings(overrides={"state_db": db, "mode": "hybrid"})
            meter = Meter()
            stream = make_position_stream(
                settings, DEMO_API_KEY, DEMO_API_SECRET, meter.handler, {"base_url": sim.url}
            )
            rest = BybitRestClient(sim.url, Credentials(DEMO_API_KEY, DEMO_API_SECRET))
            store = ProtectionStore(db)
            protection = UnifiedProtection(settings, rest, store=store)
            protection.attach(stream)
            await protection.start()
            await stream.start()
            faults = [0]
            background: list[asyncio.Task[None]] = []
            async with aiohttp.ClientSession() as http:
                try:
                    await stream.wait_ready(30)
                    background = [
                        asyncio.create_task(chaos(http, sim.url, args.fault_every, faults)),
                        asyncio.create_task(churn(http, sim.url)),
                    ]
                    meter.take()
                    for minute in range(1, int(args.minutes * 60 / args.row_s) + 1):
                        await asyncio.sleep(args.row_s)  # one sampling period
                        events, lat = meter.take()
                        stats = stream.get_stats()
                        row: list[object] = [
                            round(minute * args.row_s / 60, 2),
                            round(rss_mb(), 1),
                            len(asyncio.all_tasks()),
                            open_sockets(),
                            events,
                            round(percentile(lat, 50), 1) if lat else "-",
                            round(percentile(lat, 99), 1) if lat else "-",
                            round(max(lat), 1) if lat else "-",
                            stats.get("reconnections", 0),
                            sum(stats.get("bad_frames", {}).values())
                            if isinstance(stats.get("bad_frames"), dict)
                            else stats.get("bad_frames", 0),
                            faults[0],
                            stats.get("active_positions", 0),
                        ]
                        rows.append(row)
                        print(table(HEADERS, [row]).splitlines()[-1], flush=True)
                finally:
                    for task in background:
                        task.cancel()
                    await asyncio.gather(*background, return_exceptions=True)
                    await stream.stop()
                    await protection.stop()
                    await rest.close()
                    store.close()
    return rows


def cli() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--fault-every", type=float, default=20.0)
    parser.add_argument("--row-s", type=float, default=60.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # faults are expected; keep the table readable
    print(
        f"soak: {args.minutes} min, {args.symbols} symbols at {args.rate} Hz, "
        f"a fault every {args.fault_every} s",
        flush=True,
    )
    print(table(HEADERS, []), flush=True)
    rows = asyncio.run(soak(args))
    print()
    print(table(HEADERS, rows))
    if len(rows) >= 2:
        first, last = rows[0], rows[-1]
        print(
            f"growth first->last row: rss {float(str(last[1])) - float(str(first[1])):+.1f} MB, "
            f"tasks {int(str(last[2])) - int(str(first[2])):+d}, "
            f"sockets {int(str(last[3])) - int(str(first[3])):+d}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(cli())
