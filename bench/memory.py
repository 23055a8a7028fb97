"""Benchmark: resident memory of the product at 50/200/1,000 symbols, and an optional soak.

    .venv/bin/python bench/memory.py [--symbols 50,200,1000] [--seconds 30]
    .venv/bin/python bench/memory.py --symbols 1000 --minutes 30        # soak

For each N the simulator runs in its own process (N symbols, one open position each, 10 Hz)
and `BybitHybridStream` runs in a fresh worker process (so nothing else shares its heap), with
a handler that does nothing. RSS (`/proc/self/status` VmRSS) is sampled once a second after the
stream has subscribed every ticker; the table gives RSS when ready, at the end, the peak, and
the drift over the second half of the run (MB per hour, least squares). Writes
`bench/results/memory.png` (RSS over time per N).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from benchlib import SimProcess, machine, plot_path, pyplot, rss_mb, table

TARGET_MB = 150.0


async def worker(args: argparse.Namespace) -> None:
    from bybit_hybrid import BybitHybridStream  # noqa: PLC0415
    from bybit_hybrid.sim import DEMO_API_KEY, DEMO_API_SECRET  # noqa: PLC0415

    async def handler(event: str, payload: dict[str, Any]) -> None:
        return None

    baseline = rss_mb()
    stream = BybitHybridStream(DEMO_API_KEY, DEMO_API_SECRET, handler, base_url=args.url)
    await stream.start()
    samples: list[tuple[float, float]] = []
    try:
        await stream.wait_ready(60)
        deadline = time.monotonic() + 60
        while stream.get_stats()["subscribed_tickers"] < args.symbols:
            if time.monotonic() > deadline:
                raise RuntimeError("not every ticker subscribed")
            await asyncio.sleep(0.1)
        started = time.monotonic()
        while (elapsed := time.monotonic() - started) < args.duration:
            samples.append((elapsed, rss_mb()))
            await asyncio.sleep(1.0)
        stats = stream.get_stats()
    finally:
        await stream.stop()
    write_json(
        args.out,
        (
            {
                "baseline": baseline,
                "samples": samples,
                "ticker_updates": stats["ticker_updates"],
                "events": stats["handled_events"],
            }
        ),
    )


def write_json(path: str, value: object) -> None:
    Path(path).write_text(json.dumps(value))


async def run_point(symbols: int, duration_s: float) -> dict[str, Any]:
    out = plot_path(f".memory-{symbols}-{os.getpid()}.json")
    async with SimProcess(symbols, symbols, 10.0, stamp=False) as sim:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--worker",
            "--url",
            sim.url,
            "--symbols",
            str(symbols),
            "--duration",
            str(duration_s),
            "--out",
            str(out),
        )
        try:
            await asyncio.wait_for(proc.wait(), duration_s + 180)
        except TimeoutError:
            proc.kill()
            await proc.wait()
    result: dict[str, Any] = json.loads(out.read_text())
    out.unlink()
    return result


def drift_mb_per_h(samples: list[tuple[float, float]]) -> float:
    half = samples[len(samples) // 2 :]
    if len(half) < 2:
        return float("nan")
    n = len(half)
    mean_t = sum(t for t, _ in half) / n
    mean_m = sum(m for _, m in half) / n
    var = sum((t - mean_t) ** 2 for t, _ in half)
    cov = sum((t - mean_t) * (m - mean_m) for t, m in half)
    return cov / var * 3600 if var else float("nan")


def main(args: argparse.Namespace) -> None:
    counts = [int(n) for n in args.symbols.split(",")]
    duration_s = args.minutes * 60 if args.minutes else args.seconds
    results = {n: asyncio.run(run_point(n, duration_s)) for n in counts}
    print(f"# memory on {machine()}")
    print(
        f"# sim in its own process (10 Hz), the stream alone in a worker process; "
        f"{duration_s:g} s after every ticker is subscribed\n"
    )
    rows = []
    for n, r in results.items():
        rss = [m for _, m in r["samples"]]
        peak = max(rss)
        rows.append(
            [
                str(n),
                f"{r['baseline']:.1f}",
                f"{rss[0]:.1f}",
                f"{rss[-1]:.1f}",
                f"{peak:.1f}",
                f"{drift_mb_per_h(r['samples']):+.1f}",
                f"{r['ticker_updates']:,}",
                "met" if peak < TARGET_MB else "NOT met",
            ]
        )
    headers = [
        "symbols",
        "RSS before start MB",
        "RSS ready MB",
        "RSS end MB",
        "peak MB",
        "drift MB/h (2nd half)",
        "ticker frames",
        f"< {TARGET_MB:.0f} MB",
    ]
    print(table(headers, rows))
    plot(results, "memory_soak.png" if args.minutes else "memory.png")


def plot(results: dict[int, dict[str, Any]], name: str) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for n, r in results.items():
        ax.plot(
            [t / 60 for t, _ in r["samples"]], [m for _, m in r["samples"]], label=f"{n} symbols"
        )
    ax.axhline(TARGET_MB, color="red", linestyle="--", label="target")
    ax.set_xlabel("minutes after every ticker is subscribed")
    ax.set_ylabel("RSS MB")
    ax.set_ylim(bottom=0)
    ax.set_title("bybit-hybrid resident memory (one open position per symbol, 10 Hz)")
    ax.legend(fontsize=8)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    path = plot_path(name)
    fig.savefig(path, dpi=110)
    print(f"\nplot: {path}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--symbols", default="50,200,1000")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--minutes", type=float, default=0.0, help="soak for this many minutes")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--duration", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parsed = parser.parse_args()
    if parsed.worker:
        parsed.symbols = int(parsed.symbols)
        asyncio.run(worker(parsed))
    else:
        main(parsed)
