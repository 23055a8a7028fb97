"""Benchmark: end to end over loopback, bybit-hybrid beside pybit and ccxt pro on one feed.

    .venv/bin/python bench/end_to_end.py [--symbols 50,200,1000] [--rate 10] [--seconds 20]
        [--warmup 8] [--clients product,pybit,ccxt[,floor]] [--uvloop] [--tick-slices N]

For each symbol count N, the simulator runs in its own process (`bybit-hybrid sim --symbols N
--positions N --rate R --stamp-send-us [--tick-slices N]`: one open position per symbol, each
ticker delta's data stamped with the µs time its socket write began; the feed is one burst per
tick, or spread over N slices). The consumers then run side by side, each in its own process,
on the same feed:

- product: `BybitHybridStream` (private + public sockets, REST bootstrap; it subscribes the
  tickers of the N open positions); the callback is its `event_handler`;
- pybit: `pybit.unified_trading.WebSocket.ticker_stream` over the N symbols (threads;
  `PUBLIC_WSS` pointed at the sim), plus `position_stream` on the private socket;
- ccxt: `ccxt.pro.bybit().watch_tickers(N symbols)` with its URLs pointed at the sim (public
  only: ccxt's private watch needs account endpoints the simulator does not serve);
- floor (opt-in): not a client, aiohttp reading the same frames and doing nothing else: the
  lower bound of any aiohttp-based Python consumer on this machine.

Latency is callback time minus `simSendUs` (same machine, same clock). A client gets the
frame's stamp from the data it hands to its callback (pybit, ccxt: the merged ticker keeps the
raw field); the product's contract dict has no raw fields, so a WebSocket tap in the product's
process keeps each symbol's latest frame and the handler reads the stamp of its event's
(symbol, cs) from it: the tap's work is counted in the product's CPU. The product emits only
frames that move a mark (about a third), the peers every frame; every consumer's CPU is
divided by the ticker frames it received. CPU is `resource.getrusage` in each consumer over
the measured window. Writes `bench/results/end_to_end.png` (`end_to_end_spread.png` for a
spread feed).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from benchlib import (
    SimProcess,
    cpu_s,
    machine,
    now_us,
    percentile,
    plot_path,
    proc_cpu_s,
    pyplot,
    rss_mb,
    table,
)

CLIENTS = ("product", "pybit", "ccxt")
# `floor` (opt-in: --clients product,pybit,ccxt,floor) is aiohttp alone, a reference, not a peer.
CONSUMERS = (*CLIENTS, "floor")
_STAMP = '"simSendUs":'
_TICKER_PREFIX = '{"topic":"tickers.'
_TOPIC_PREFIX_LEN = len(_TICKER_PREFIX)
_MAX_SAMPLES = 400_000


# --- consumers (each runs in its own process) -------------------------------------------------


class Meter:
    """Latency samples and message counts of one consumer; thread-safe enough for pybit (the
    GIL makes list.append and int += under one callback thread consistent)."""

    def __init__(self) -> None:
        self.measuring = False
        self.latencies_us: list[int] = []
        self.messages = 0
        self.callbacks = 0
        self.unmatched = 0

    def sample(self, stamp_us: int | None) -> None:
        if not self.measuring:
            return
        self.callbacks += 1
        if stamp_us is None:
            self.unmatched += 1
        elif len(self.latencies_us) < _MAX_SAMPLES:
            self.latencies_us.append(now_us() - stamp_us)


async def measure(
    meter: Meter, warmup_s: float, seconds: float, count: Callable[[], int]
) -> dict[str, Any]:
    await asyncio.sleep(warmup_s)
    started_cpu, started_msgs = cpu_s(), count()
    meter.measuring = True
    await asyncio.sleep(seconds)
    meter.measuring = False
    cpu = cpu_s() - started_cpu
    messages = count() - started_msgs
    return {
        "cpu_s": cpu,
        "messages": messages,
        "callbacks": meter.callbacks,
        "unmatched": meter.unmatched,
        "latencies_us": meter.latencies_us,
        "rss_mb": rss_mb(),
    }


def frame_stamp(frame: str | None, cs: int | None) -> int | None:
    """`simSendUs` of a ticker frame, if that frame is the one with sequence `cs`."""
    if frame is None:
        return None
    at = frame.find(_STAMP)
    cs_at = frame.rfind('"cs":') + 5
    if at < 0 or cs_at < 5 or int(frame[cs_at : frame.index(",", cs_at)]) != cs:
        return None
    return int(frame[at + len(_STAMP) : frame.index("}", at)])


async def run_product(args: argparse.Namespace) -> dict[str, Any]:
    from bybit_hybrid import BybitHybridStream  # noqa: PLC0415
    from bybit_hybrid.sim import DEMO_API_KEY, DEMO_API_SECRET  # noqa: PLC0415
    from bybit_hybrid.transport.ws import AiohttpWsBackend, WsConnection  # noqa: PLC0415

    meter = Meter()
    frames: dict[str, str] = {}  # symbol -> its latest ticker frame, parsed only if it is used

    class Tap:
        """Keeps each symbol's latest ticker frame; the frame itself goes on unchanged. The
        stamp is parsed in the handler, only for frames that caused an event (a third)."""

        def __init__(self, inner: WsConnection) -> None:
            self.inner = inner

        async def send_str(self, data: str) -> None:
            await self.inner.send_str(data)

        async def receive(self) -> str | bytes:
            payload = await self.inner.receive()
            if isinstance(payload, str) and payload.startswith(_TICKER_PREFIX):
                frames[payload[_TOPIC_PREFIX_LEN : payload.index('"', _TOPIC_PREFIX_LEN)]] = payload
            return payload

        async def close(self) -> None:
            await self.inner.close()

    class TapBackend:
        def __init__(self) -> None:
            self.inner = AiohttpWsBackend()

        async def connect(self, url: str, *, timeout_s: float) -> WsConnection:
            return Tap(await self.inner.connect(url, timeout_s=timeout_s))

        async def aclose(self) -> None:
            await self.inner.aclose()

    async def handler(event: str, payload: dict[str, Any]) -> None:
        data = payload["data"]
        if data["source"] != "ticker" or not meter.measuring:
            return
        meter.sample(frame_stamp(frames.get(data["symbol"]), data["cs"]))

    backend = TapBackend()
    stream = BybitHybridStream(
        DEMO_API_KEY, DEMO_API_SECRET, handler, base_url=args.url, ws_backend=backend
    )
    await stream.start()
    try:
        result = await measure(
            meter, args.warmup, args.seconds, lambda: stream.core.stats.ticker_updates
        )
        result["subscribed"] = stream.get_stats()["subscribed_tickers"]
    finally:
        await stream.stop()
        await backend.aclose()
    return result


async def sim_symbols(url: str, count: int) -> list[str]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(url + "/v5/market/instruments-info?category=linear&limit=1000") as response,
    ):
        body = await response.json()
    symbols = [row["symbol"] for row in body["result"]["list"]]
    cursor = body["result"].get("nextPageCursor")
    while cursor and len(symbols) < count:
        async with (
            aiohttp.ClientSession() as http,
            http.get(
                url + f"/v5/market/instruments-info?category=linear&limit=1000&cursor={cursor}"
            ) as response,
        ):
            body = await response.json()
        symbols += [row["symbol"] for row in body["result"]["list"]]
        cursor = body["result"].get("nextPageCursor")
    return symbols[:count]


async def run_pybit(args: argparse.Namespace) -> dict[str, Any]:
    from pybit import unified_trading  # noqa: PLC0415

    from bybit_hybrid.sim import DEMO_API_KEY, DEMO_API_SECRET  # noqa: PLC0415

    symbols = await sim_symbols(args.url, args.symbols)
    ws_base = args.url.replace("http://", "ws://")
    unified_trading.PUBLIC_WSS = ws_base + "/v5/public/{CHANNEL_TYPE}"
    unified_trading.PRIVATE_WSS = ws_base + "/v5/private"
    meter = Meter()
    lock = threading.Lock()

    def on_ticker(message: dict[str, Any]) -> None:
        with lock:
            meter.messages += 1
        stamp = message["data"].get("simSendUs")
        meter.sample(stamp if isinstance(stamp, int) else None)

    def on_position(message: dict[str, Any]) -> None:
        pass

    public = unified_trading.WebSocket(channel_type="linear", testnet=False)
    private = unified_trading.WebSocket(
        channel_type="private", testnet=False, api_key=DEMO_API_KEY, api_secret=DEMO_API_SECRET
    )
    try:
        private.position_stream(callback=on_position)
        public.ticker_stream(symbol=symbols, callback=on_ticker)
        result = await measure(meter, args.warmup, args.seconds, lambda: meter.messages)
        result["subscribed"] = len(symbols)
    finally:
        public.exit()
        private.exit()
    return result


async def run_ccxt(args: argparse.Namespace) -> dict[str, Any]:
    # Imported by name: ccxt is an optional bench extra, typed or absent depending on the box.
    ccxtpro: Any = importlib.import_module("ccxt.pro")

    exchange = ccxtpro.bybit({"options": {"fetchMarkets": {"types": ["linear"]}}})
    for key in ("spot", "futures", "v2", "public", "private"):
        exchange.urls["api"][key] = args.url
    exchange.urls["api"]["ws"]["public"]["linear"] = (
        args.url.replace("http://", "ws://") + "/v5/public/linear"
    )
    meter = Meter()
    counter = {"messages": 0}
    original = exchange.handle_message

    def counting(client: Any, message: Any) -> Any:
        if isinstance(message, dict) and str(message.get("topic", "")).startswith("tickers."):
            counter["messages"] += 1
        return original(client, message)

    exchange.handle_message = counting
    try:
        await exchange.load_markets()
        wanted = set(await sim_symbols(args.url, args.symbols))
        symbols = [m["symbol"] for m in exchange.markets.values() if m["id"] in wanted]

        async def consume() -> None:
            while True:
                tickers = await exchange.watch_tickers(symbols)
                for ticker in tickers.values():
                    stamp = ticker["info"].get("simSendUs")
                    meter.sample(stamp if isinstance(stamp, int) else None)

        task = asyncio.create_task(consume())
        try:
            result = await measure(meter, args.warmup, args.seconds, lambda: counter["messages"])
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        result["subscribed"] = len(symbols)
    finally:
        await exchange.close()
    return result


async def run_floor(args: argparse.Namespace) -> dict[str, Any]:
    """Not a client: aiohttp reading the same ticker frames and doing nothing else (the stamp
    is read with string operations). The lower bound for any aiohttp-based Python client."""
    symbols = await sim_symbols(args.url, args.symbols)
    meter = Meter()
    counter = {"messages": 0}
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(args.url.replace("http://", "ws://") + "/v5/public/linear") as ws,
    ):
        for i in range(0, len(symbols), 10):
            topics = [f"tickers.{symbol}" for symbol in symbols[i : i + 10]]
            await ws.send_str(json.dumps({"op": "subscribe", "args": topics}))

        async def consume() -> None:
            async for message in ws:
                text = message.data
                if isinstance(text, str) and text.startswith(_TICKER_PREFIX):
                    counter["messages"] += 1
                    at = text.find(_STAMP)
                    if at > 0:
                        meter.sample(int(text[at + len(_STAMP) : text.index("}", at)]))

        task = asyncio.create_task(consume())
        try:
            result = await measure(meter, args.warmup, args.seconds, lambda: counter["messages"])
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    result["subscribed"] = len(symbols)
    return result


def consumer_main(args: argparse.Namespace) -> None:
    runner = {"product": run_product, "pybit": run_pybit, "ccxt": run_ccxt, "floor": run_floor}[
        args.consumer
    ]
    if args.uvloop and args.consumer != "pybit":
        import uvloop  # noqa: PLC0415

        result = uvloop.run(runner(args))
    else:
        result = asyncio.run(runner(args))
    Path(args.out).write_text(json.dumps(result))


# --- the orchestrator ----------------------------------------------------------------------


async def run_point(args: argparse.Namespace, symbols: int) -> dict[str, dict[str, Any]]:
    async with SimProcess(symbols, symbols, args.rate, tick_slices=args.tick_slices) as sim:
        procs: dict[str, asyncio.subprocess.Process] = {}
        outs: dict[str, Path] = {}
        for client in args.clients:
            outs[client] = plot_path(f".e2e-{client}-{os.getpid()}.json")
            cmd = [
                sys.executable,
                __file__,
                "--consumer",
                client,
                "--url",
                sim.url,
                "--symbols",
                str(symbols),
                "--seconds",
                str(args.seconds),
                "--warmup",
                str(args.warmup),
                "--out",
                str(outs[client]),
            ]
            if args.uvloop:
                cmd.append("--uvloop")
            procs[client] = await asyncio.create_subprocess_exec(*cmd)
        sim_cpu_start = proc_cpu_s(sim.pid)
        deadline = args.warmup + args.seconds + 120
        results: dict[str, dict[str, Any]] = {}
        for client, proc in procs.items():
            try:
                await asyncio.wait_for(proc.wait(), deadline)
            except TimeoutError:
                proc.kill()
                await proc.wait()
            if outs[client].exists():
                results[client] = json.loads(outs[client].read_text())
                outs[client].unlink()
        sim_cpu = proc_cpu_s(sim.pid) - sim_cpu_start
    results["_sim"] = {"cpu_s": sim_cpu}
    return results


def summarise(symbols: int, results: dict[str, dict[str, Any]], rate: float) -> list[list[str]]:
    rows = []
    for client in CONSUMERS:
        r = results.get(client)
        if r is None:
            continue
        lat = [v / 1000 for v in r["latencies_us"]]
        per_100k = r["cpu_s"] / r["messages"] * 100_000 if r["messages"] else float("nan")
        r["p50_ms"], r["p99_ms"] = percentile(lat, 50), percentile(lat, 99)
        r["max_ms"] = max(lat) if lat else float("nan")
        r["cpu_per_100k"] = per_100k
        rows.append(
            [
                str(symbols),
                f"{rate:g}",
                client,
                f"{r['messages']:,}",
                f"{len(lat):,}",
                f"{r['p50_ms']:.3f}",
                f"{r['p99_ms']:.3f}",
                f"{r['max_ms']:.2f}",
                f"{per_100k:.2f}",
                f"{r['rss_mb']:.0f}",
            ]
        )
    return rows


def main(args: argparse.Namespace) -> None:
    all_rows: list[list[str]] = []
    points: dict[int, dict[str, dict[str, Any]]] = {}
    for symbols in args.symbol_counts:
        results = asyncio.run(run_point(args, symbols))
        points[symbols] = results
        all_rows += summarise(symbols, results, args.rate)
        print(f"... {symbols} symbols done", file=sys.stderr, flush=True)
    print(f"# end to end on {machine()}")
    print(
        f"# sim in its own process, {args.rate:g} Hz, one open position per symbol; "
        f"{args.warmup:g} s warm-up, {args.seconds:g} s measured; "
        f"event loop: {'uvloop' if args.uvloop else 'asyncio'}; feed: {feed(args)}\n"
    )
    headers = [
        "symbols",
        "Hz",
        "client",
        "ticker frames",
        "latency samples",
        "p50 ms",
        "p99 ms",
        "max ms",
        "CPU s / 100k msgs",
        "RSS MB",
    ]
    print(table(headers, all_rows))
    print()
    print(verdicts(points, args.rate))
    plot(points, "end_to_end.png" if args.tick_slices == 1 else "end_to_end_spread.png")


def feed(args: argparse.Namespace) -> str:
    if args.tick_slices == 1:
        return "burst (every symbol's delta at once, each tick)"
    gap_ms = 1000 / (args.rate * args.tick_slices)
    return f"spread ({args.tick_slices} slices {gap_ms:g} ms apart each tick)"


def verdicts(points: dict[int, dict[str, dict[str, Any]]], rate: float) -> str:
    lines = []
    for symbols, results in points.items():
        product = results.get("product")
        if product is not None and symbols == 200 and rate == 10:
            ok = product["p99_ms"] < 1.0
            lines.append(
                f"- 200 symbols x 10 Hz: product p99 {product['p99_ms']:.3f} ms "
                f"(target < 1 ms: {'met' if ok else 'NOT met'})"
            )
        peers = [results[c] for c in ("pybit", "ccxt") if c in results]
        if product is None or not peers:
            continue
        best_p99 = min(p["p99_ms"] for p in peers)
        best_cpu = min(p["cpu_per_100k"] for p in peers)
        lat_ok = product["p99_ms"] <= best_p99 / 3
        cpu_ok = product["cpu_per_100k"] <= best_cpu / 5
        lines.append(
            f"- {symbols} symbols: p99 {product['p99_ms']:.3f} ms vs best peer {best_p99:.3f} ms "
            f"({best_p99 / product['p99_ms']:.1f}x; target ≥ 3x: "
            f"{'met' if lat_ok else 'NOT met'}); "
            f"CPU/100k {product['cpu_per_100k']:.2f} s vs best peer {best_cpu:.2f} s "
            f"({best_cpu / product['cpu_per_100k']:.1f}x; target ≥ 5x: "
            f"{'met' if cpu_ok else 'NOT met'})"
        )
    return "\n".join(lines)


def plot(points: dict[int, dict[str, dict[str, Any]]], name: str) -> None:
    plt = pyplot()
    fig, (ax_lat, ax_cpu) = plt.subplots(1, 2, figsize=(11, 4.5))
    counts = sorted(points)
    for i, client in enumerate(CONSUMERS):
        xs = [n for n in counts if client in points[n]]
        if not xs:
            continue
        color = f"C{i}"  # one colour per client on both panels, p50 dotted
        ax_lat.plot(
            xs,
            [points[n][client]["p99_ms"] for n in xs],
            marker="o",
            color=color,
            label=f"{client} p99",
        )
        ax_lat.plot(
            xs,
            [points[n][client]["p50_ms"] for n in xs],
            marker=".",
            linestyle=":",
            color=color,
            label=f"{client} p50",
        )
        ax_cpu.plot(
            xs,
            [points[n][client]["cpu_per_100k"] for n in xs],
            marker="o",
            color=color,
            label=client,
        )
    for ax in (ax_lat, ax_cpu):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(counts, [str(n) for n in counts])
        ax.set_xlabel("symbols (one open position each)")
        ax.legend(fontsize=8)
        ax.grid(True, which="both", alpha=0.3)
    ax_lat.set_ylabel("ms, sim socket write -> callback")
    ax_lat.set_title("latency (lower is better)")
    ax_cpu.set_ylabel("CPU seconds per 100k ticker frames")
    ax_cpu.set_title("CPU cost (lower is better)")
    fig.tight_layout()
    path = plot_path(name)
    fig.savefig(path, dpi=110)
    print(f"\nplot: {path}")


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--symbols", default="50,200,1000", help="comma-separated symbol counts")
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=8.0)
    parser.add_argument("--clients", default=",".join(CLIENTS))
    parser.add_argument("--uvloop", action="store_true", help="run the asyncio clients on uvloop")
    parser.add_argument(
        "--tick-slices",
        type=int,
        default=1,
        help="sim feed shape: 1 = burst (default); N = each tick spread over N slices",
    )
    parser.add_argument("--consumer", choices=CONSUMERS, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.consumer is None:
        args.symbol_counts = [int(n) for n in args.symbols.split(",")]
        args.clients = [c for c in args.clients.split(",") if c]
        unknown = set(args.clients) - set(CONSUMERS)
        if unknown:
            parser.error(f"unknown clients: {', '.join(sorted(unknown))}")
    else:
        args.symbols = int(args.symbols)
    return args


if __name__ == "__main__":
    parsed = parse()
    if parsed.consumer is not None:
        consumer_main(parsed)
    else:
        main(parsed)
