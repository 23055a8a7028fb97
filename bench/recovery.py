"""Benchmark: recovery from dropped sockets: marks flowing again, subscriptions and book restored.

    .venv/bin/python bench/recovery.py [--symbols 1000] [--trials 5] [--max-args 21000,2000]

The simulator runs in its own process with N symbols, one open position each, at 10 Hz; the
stream runs here. For each trial the simulator drops sockets (`POST /sim/fault/drop`, a clean
close): the public ones, the private one, or all of them (a reconnect storm). Clocks start at
the drop request and stop when, after it:

- `reopened`: the first dropped socket is open again (this includes the reconnect back-off,
  0.5 s × jitter 0.5..1.5 by default, BYBIT_V5.md §2);
- `subs restored`: every one of the N ticker topics is confirmed again (public drops);
  `restore work` is the same measured from the socket's reopening, i.e. without back-off;
- `first mark` / `all marks`: a ticker-sourced event arrived for the first / for every symbol
  (each symbol's mark moves on about a third of its 100 ms ticks, so "all" waits for the
  slowest of N random walks);
- `reconciled`: the REST snapshot that follows a private reconnect was merged into the book.

`--max-args` repeats the run with other per-connection topic limits: 21,000 (Bybit's; ~1,100
`tickers.SYMnnnUSDT` topics per connection) and e.g. 2,000 (forcing ~10 public connections).
Writes `bench/results/recovery.png`.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import aiohttp
from benchlib import SimProcess, machine, percentile, plot_path, pyplot, table

from bybit_hybrid import BybitHybridStream
from bybit_hybrid.protocol.hybrid import CoreEvent, HybridConfig, Reconciled
from bybit_hybrid.protocol.session import SessionState, StateChanged
from bybit_hybrid.protocol.subscriptions import SubscriptionConfirmed
from bybit_hybrid.sim import DEMO_API_KEY, DEMO_API_SECRET

TARGETS = ("public", "private", "all")
_WAIT_S = 30.0


class Watcher:
    """Times of the events a recovery is made of, since `reset()`."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.t0 = time.monotonic()
        self.reopened: float | None = None
        self.confirmed: set[str] = set()
        self.subs_at: float | None = None
        self.marks: dict[str, float] = {}
        self.reconciled: float | None = None
        self.changed = asyncio.Event()

    def listener(self, event: CoreEvent) -> None:
        now = time.monotonic() - self.t0
        if isinstance(event, StateChanged) and event.new is SessionState.SUBSCRIBING:
            if self.reopened is None:
                self.reopened = now
        elif isinstance(event, SubscriptionConfirmed) and event.topic.startswith("tickers."):
            self.confirmed.add(event.topic)
            self.subs_at = now
        elif isinstance(event, Reconciled) and event.reason == "reconnect":
            self.reconciled = now
        self.changed.set()

    async def handler(self, event: str, payload: dict[str, Any]) -> None:
        data = payload["data"]
        if data["source"] == "ticker":
            self.marks.setdefault(data["symbol"], time.monotonic() - self.t0)
            self.changed.set()


async def wait_until(watcher: Watcher, done: Any) -> bool:
    deadline = time.monotonic() + _WAIT_S
    while not done():
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        watcher.changed.clear()
        try:
            await asyncio.wait_for(watcher.changed.wait(), left)
        except TimeoutError:
            return False
    return True


async def run_limit(args: argparse.Namespace, max_args: int) -> dict[str, list[dict[str, Any]]]:
    results: dict[str, list[dict[str, Any]]] = {t: [] for t in TARGETS}
    async with SimProcess(args.symbols, args.symbols, 10.0, stamp=False) as sim:
        watcher = Watcher()
        stream = BybitHybridStream(
            DEMO_API_KEY,
            DEMO_API_SECRET,
            watcher.handler,
            base_url=sim.url,
            config=HybridConfig(max_args_chars=max_args),
        )
        stream.add_listener(watcher.listener)
        await stream.start()
        try:
            await stream.wait_ready(30)
            ok = await wait_until(
                watcher, lambda: stream.get_stats()["subscribed_tickers"] >= args.symbols
            )
            if not ok:
                raise RuntimeError("the stream never subscribed every ticker")
            connections = len(stream.core.sockets()) - 1
            async with aiohttp.ClientSession() as http:
                for trial in range(args.trials):
                    for target in TARGETS:
                        await asyncio.sleep(1.0)
                        results[target].append(
                            await one_drop(http, sim.url, watcher, target, args.symbols)
                        )
                    print(f"... limit {max_args}: trial {trial + 1} done", flush=True)
        finally:
            await stream.stop()
    results["_connections"] = [{"public": connections}]
    return results


async def one_drop(
    http: aiohttp.ClientSession,
    url: str,
    watcher: Watcher,
    target: str,
    symbols: int,
) -> dict[str, Any]:
    watcher.reset()
    async with http.post(url + "/sim/fault/drop", json={"target": target}) as response:
        await response.read()
    public = target in ("public", "all")
    private = target in ("private", "all")

    def done() -> bool:
        if public and len(watcher.confirmed) < symbols:
            return False
        if public and len(watcher.marks) < symbols:
            return False
        return not (private and watcher.reconciled is None)

    completed = await wait_until(watcher, done)
    marks = sorted(watcher.marks.values())
    return {
        "completed": completed,
        "reopened": watcher.reopened,
        "subs": watcher.subs_at if public else None,
        "first_mark": marks[0] if marks and public else None,
        "all_marks": marks[-1] if len(marks) >= symbols and public else None,
        "reconciled": watcher.reconciled if private else None,
    }


def ms(values: list[float | None], pct: float) -> str:
    known = [v * 1000 for v in values if v is not None]
    return f"{percentile(known, pct):.0f}" if known else "-"


def main(args: argparse.Namespace) -> None:
    limits = [int(v) for v in args.max_args.split(",")]
    by_limit = {limit: asyncio.run(run_limit(args, limit)) for limit in limits}
    print(f"# recovery on {machine()}")
    print(
        f"# sim in its own process: {args.symbols} symbols with an open position each, 10 Hz; "
        f"{args.trials} trials per drop; times in ms from the drop request, median (p90)\n"
    )
    rows = []
    for limit, results in by_limit.items():
        conns = results["_connections"][0]["public"]
        for target in TARGETS:
            trials = results[target]
            rows.append(
                [
                    f"{limit:,}",
                    str(conns),
                    target,
                    f"{sum(t['completed'] for t in trials)}/{len(trials)}",
                    *(
                        f"{ms([t[k] for t in trials], 50)} ({ms([t[k] for t in trials], 90)})"
                        for k in ("reopened", "subs", "first_mark", "all_marks", "reconciled")
                    ),
                    restore_work(trials),
                ]
            )
    headers = [
        "args limit",
        "public conns",
        "drop",
        "recovered",
        "reopened",
        "subs restored",
        "first mark",
        "all marks",
        "reconciled",
        "restore work",
    ]
    print(table(headers, rows))
    plot(by_limit)


def restore_work(trials: list[dict[str, Any]]) -> str:
    """Median time from reopening to every subscription confirmed (back-off excluded)."""
    spans = [
        t["subs"] - t["reopened"]
        for t in trials
        if t["subs"] is not None and t["reopened"] is not None
    ]
    return ms(list(spans), 50) if spans else "-"


def plot(by_limit: dict[int, dict[str, list[dict[str, Any]]]]) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(10, 4.5))
    labels, data = [], []
    for limit, results in by_limit.items():
        for target in TARGETS:
            for key in ("subs", "all_marks", "reconciled"):
                values = [t[key] * 1000 for t in results[target] if t[key] is not None]
                if values:
                    labels.append(f"{target}\n{key}\n{limit // 1000}k")
                    data.append(values)
    ax.boxplot(data)
    ax.set_xticks(range(1, len(labels) + 1), labels, fontsize=7)
    ax.set_ylabel("ms after the drop")
    ax.set_title("recovery after a dropped socket (includes reconnect back-off)")
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    path = plot_path("recovery.png")
    fig.savefig(path, dpi=110)
    print(f"\nplot: {path}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--symbols", type=int, default=1000)
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--max-args", default="21000,2000")
    main(parser.parse_args())
