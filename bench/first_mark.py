"""Benchmark: open → first event with a mark, and mark events per position vs the exchange.

Runs the simulator in its own process (`bybit-hybrid sim`) and the stream in this one.

1. Latency: the exchange opens a position (control route); we time until the stream's handler
   receives an open event for that position carrying a mark price. The clock starts before
   the control request is sent, so each figure is an upper bound (it includes that HTTP call).
2. Rate: with K positions open, the stream's ticker-sourced events per position are compared
   with the mark-bearing ticker frames the exchange sent for those symbols (counted by an
   independent raw WebSocket subscriber), over the same window.

    .venv/bin/python bench/first_mark.py [--trials 40] [--symbols 20] [--rate 10] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import platform
import statistics
import sys
import time
from collections import Counter
from typing import Any

import aiohttp

from bybit_hybrid import BybitHybridStream
from bybit_hybrid.sim import DEMO_API_KEY, DEMO_API_SECRET


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


class Recorder:
    """The stream's event handler: remembers when each position first showed a mark."""

    def __init__(self) -> None:
        self.first_mark_at: dict[str, float] = {}
        self.ticker_events: Counter[str] = Counter()
        self.counting = False
        self.marked = asyncio.Event()

    async def __call__(self, event: str, payload: dict[str, Any]) -> None:
        data = payload["data"]
        symbol = data["symbol"]
        if data["status"] == "open" and data["mark_price"] is not None:
            self.first_mark_at.setdefault(symbol, time.monotonic())
            self.marked.set()
        if self.counting and data["source"] == "ticker":
            self.ticker_events[symbol] += 1


async def start_sim(args: argparse.Namespace) -> tuple[asyncio.subprocess.Process, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bybit_hybrid",
        "sim",
        "--port",
        "0",
        "--symbols",
        str(args.symbols),
        "--rate",
        str(args.rate),
        "--seed",
        "1",
        "--log-level",
        "WARNING",
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    line = (await proc.stdout.readline()).decode()
    return proc, line.split()[-1]


async def control(http: aiohttp.ClientSession, url: str, path: str, body: dict[str, Any]) -> None:
    async with http.post(url + path, json=body) as response:
        result = await response.json()
        if not result.get("ok"):
            raise RuntimeError(f"{path}: {result}")


async def symbols_of(http: aiohttp.ClientSession, url: str) -> list[str]:
    async with http.get(url + "/v5/market/instruments-info?category=linear") as response:
        body = await response.json()
    return [item["symbol"] for item in body["result"]["list"]]


async def raw_mark_frames(
    url: str, symbols: list[str], counts: Counter[str], counting: asyncio.Event
) -> None:
    """An independent subscriber: counts the frames that carry markPrice, per symbol."""
    ws_url = url.replace("http", "ws") + "/v5/public/linear"
    async with aiohttp.ClientSession() as http, http.ws_connect(ws_url) as ws:
        await ws.send_str(
            json.dumps({"op": "subscribe", "args": [f"tickers.{s}" for s in symbols]})
        )
        async for msg in ws:
            frame = json.loads(msg.data)
            data = frame.get("data")
            if counting.is_set() and isinstance(data, dict) and "markPrice" in data:
                counts[data["symbol"]] += 1


async def measure_latency(
    http: aiohttp.ClientSession, url: str, recorder: Recorder, symbols: list[str], trials: int
) -> list[float]:
    latencies_ms = []
    for trial in range(trials):
        symbol = symbols[trial % len(symbols)]
        recorder.first_mark_at.pop(symbol, None)
        recorder.marked.clear()
        started = time.monotonic()
        await control(
            http, url, "/sim/position/open", {"symbol": symbol, "side": "Buy", "qty": "1"}
        )
        while symbol not in recorder.first_mark_at:
            await asyncio.wait_for(recorder.marked.wait(), 10)
            recorder.marked.clear()
        latencies_ms.append((recorder.first_mark_at[symbol] - started) * 1000)
        await control(http, url, "/sim/position/close", {"symbol": symbol})
        await asyncio.sleep(0.05)  # let the close and the unsubscribe settle
    return latencies_ms


async def measure_rate(
    http: aiohttp.ClientSession, url: str, recorder: Recorder, symbols: list[str], seconds: float
) -> tuple[Counter[str], Counter[str]]:
    for symbol in symbols:
        await control(
            http, url, "/sim/position/open", {"symbol": symbol, "side": "Sell", "qty": "1"}
        )
    exchange: Counter[str] = Counter()
    counting = asyncio.Event()
    observer = asyncio.create_task(raw_mark_frames(url, symbols, exchange, counting))
    await asyncio.sleep(1.0)  # both subscribers past their snapshots
    recorder.counting = True
    counting.set()
    await asyncio.sleep(seconds)
    counting.clear()
    recorder.counting = False
    observer.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await observer
    return recorder.ticker_events, exchange


async def main(args: argparse.Namespace) -> None:
    proc, url = await start_sim(args)
    recorder = Recorder()
    stream = BybitHybridStream(DEMO_API_KEY, DEMO_API_SECRET, recorder, base_url=url)
    try:
        async with aiohttp.ClientSession() as http:
            symbols = (await symbols_of(http, url))[: args.symbols]
            await stream.start()
            await stream.wait_ready(10)
            latencies = await measure_latency(http, url, recorder, symbols, args.trials)
            held = symbols[: args.positions]
            stream_counts, exchange_counts = await measure_rate(
                http, url, recorder, held, args.seconds
            )
    finally:
        await stream.stop()
        proc.terminate()
        await proc.wait()
    report(args, latencies, stream_counts, exchange_counts)


def report(
    args: argparse.Namespace,
    latencies: list[float],
    stream_counts: Counter[str],
    exchange_counts: Counter[str],
) -> None:
    print(
        f"# first_mark on {platform.processor() or platform.machine()}, "
        f"python {platform.python_version()}, sim {args.symbols} symbols @ {args.rate} Hz"
    )
    print("\nopen -> first event with a mark (ms, includes the control HTTP call)")
    print("| trials | p50 | p90 | p99 | max | target |")
    print("|---|---|---|---|---|---|")
    print(
        f"| {len(latencies)} | {statistics.median(latencies):.1f} | "
        f"{percentile(latencies, 90):.1f} | {percentile(latencies, 99):.1f} | "
        f"{max(latencies):.1f} | < 150 |"
    )
    print(
        f"\nmark events per open position over {args.seconds:.0f} s "
        "(exchange = frames carrying markPrice)"
    )
    print("| symbol | exchange frames/s | stream ticker events/s | delivered |")
    print("|---|---|---|---|")
    for symbol in sorted(exchange_counts):
        sent = exchange_counts[symbol] / args.seconds
        got = stream_counts[symbol] / args.seconds
        share = stream_counts[symbol] / exchange_counts[symbol] if exchange_counts[symbol] else 0
        print(f"| {symbol} | {sent:.2f} | {got:.2f} | {share:.0%} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--symbols", type=int, default=20)
    parser.add_argument("--positions", type=int, default=5)
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    asyncio.run(main(parser.parse_args()))
