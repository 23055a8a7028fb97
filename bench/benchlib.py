"""Shared helpers of the benchmarks: machine line, percentiles, a live core without I/O, the
simulator in its own process, per-process CPU and RSS, and plot output.

Not a benchmark itself; each `bench/*.py` imports it (the scripts run from the checkout, so
`bench/` is on `sys.path`).
"""

from __future__ import annotations

import asyncio
import os
import platform
import resource
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Final

import msgspec

from bybit_hybrid.protocol.hybrid import PRIVATE, HybridConfig, HybridCore
from bybit_hybrid.protocol.session import SessionState
from bybit_hybrid.sim import DEMO_API_KEY, DEMO_API_SECRET, frames
from bybit_hybrid.sim.exchange import Exchange
from bybit_hybrid.sim.positions import Side
from bybit_hybrid.sim.prices import PriceBook
from bybit_hybrid.wire.signing import Credentials

RESULTS: Final = Path(__file__).resolve().parent / "results"
HOST: Final = "127.0.0.1"


def machine() -> str:
    """One line naming the machine a result was measured on."""
    cpu = platform.processor() or platform.machine()
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{model or cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, msgspec {msgspec.__version__}"
    )


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (NaN when empty)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, -(-len(ordered) * pct // 100) - 1))
    return ordered[int(rank)]


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def cpu_s() -> float:
    """User + system CPU seconds of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def rss_mb() -> float:
    """Current resident set size of this process (Linux /proc; peak RSS elsewhere)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def plot_path(name: str) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    return RESULTS / name


def pyplot() -> Any:
    """matplotlib's pyplot on the file-only Agg backend (no display needed)."""
    import matplotlib  # noqa: PLC0415 - optional dependency, only the benchmarks need it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    return plt


# --- frames like the simulator's ---------------------------------------------------------


def sim_symbols(count: int) -> list[str]:
    return list(Exchange(count, 1, 0).instruments)


def ticker_frames(count: int, ticks: int, seed: int = 1) -> list[str]:
    """Real simulator ticker deltas: `ticks` steps of `count` symbols' price walks (the mix of
    book-only, trade and mark moves of `sim/prices.py`), snapshots first."""
    ex = Exchange(count, seed, 0)
    book: PriceBook = ex.prices
    out = [
        frames.ticker_frame(s, "snapshot", dict(t.fields), t.cs, 1) for s, t in book.tickers.items()
    ]
    for tick in range(ticks):
        for symbol, names in book.step().items():
            ticker = book.tickers[symbol]
            data = {"symbol": symbol}
            for name in names:
                data[name] = ticker.fields[name]
            out.append(frames.ticker_frame(symbol, "delta", data, ticker.cs, 1000 + tick * 100))
    return out


def position_frames(count: int, pushes: int) -> tuple[list[str], list[str]]:
    """(opening pushes, then `pushes` change pushes): real simulator `position` frames for
    `count` symbols; each change moves a stop loss, a watched field, so each is an event."""
    ex = Exchange(count, 1, 0)
    symbols = list(ex.instruments)
    now_ms = 1_000
    for i, symbol in enumerate(symbols):
        inst = ex.instruments[symbol]
        ex.market_order(
            symbol, Side.BUY if i % 2 == 0 else Side.SELL, inst.min_order_qty, 0, now_ms
        )
    opens = _private_frames(ex)
    changes: list[str] = []
    rounds = 0
    while len(changes) < pushes:
        rounds += 1
        for symbol in symbols:
            now_ms += 1
            pos = ex.positions[(symbol, 0)]
            mark = ex.prices.mark(symbol)
            tick = ex.instruments[symbol].tick_size
            offset = tick * (100 + rounds % 2)
            stop = mark - offset if pos.side is Side.BUY else mark + offset
            ex.change_position(symbol, 0, now_ms, stop_loss=stop)
        changes.extend(_private_frames(ex))
    return opens, changes[:pushes]


def _private_frames(ex: Exchange) -> list[str]:
    out = []
    for n, push in enumerate(ex.drain_pushes()):
        if push.topic == "position":
            out.append(frames.private_push(f"p{n}", "position", push.creation_ms, push.rows))
    return out


# --- a live HybridCore without I/O ----------------------------------------------------------

_OK_PUBLIC = '{{"success":true,"ret_msg":"","conn_id":"c","req_id":"{req}","op":"{op}"}}'
_OK_PRIVATE = '{{"success":true,"ret_msg":"","op":"{op}","conn_id":"c"}}'


class FakeClock:
    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        self.now += 1e-6
        return self.now


def live_core(
    opening_frames: Sequence[str], clock: FakeClock, config: HybridConfig | None = None
) -> HybridCore:
    """A core whose sockets are all LIVE, bootstrapped empty, then fed `opening_frames`
    (private position pushes) and every resulting ticker subscription acknowledged."""
    core = HybridCore(Credentials(DEMO_API_KEY, DEMO_API_SECRET), config)
    settle(core, clock)
    for request in core.take_rest_requests():
        core.on_positions(
            request.request_id, [], requested_at=clock(), response_ts_ms=1, now=clock()
        )
    for frame in opening_frames:
        core.on_frame(PRIVATE, frame, clock())
        for request in core.take_rest_requests():  # mark seeds: the ticker frames bring marks
            core.on_tickers(request.request_id, [], clock())
    settle(core, clock)
    core.take_events()
    return core


def settle(core: HybridCore, clock: FakeClock) -> int:
    """Opens every socket and acknowledges everything the core sends; returns frames acked."""
    acked = 0
    while True:
        progressed = False
        for name in core.sockets():
            session = core.session(name)
            if session.state is SessionState.DISCONNECTED:
                core.start_connect(name, clock())
                core.on_open(name, clock())
                progressed = True
            for frame in core.take_outbox(name):
                reply = _reply_to(name, frame)
                if reply is not None:
                    core.on_frame(name, reply, clock())
                    acked += 1
                progressed = True
        if not progressed:
            return acked


def _reply_to(name: str, frame: str) -> str | None:
    sent = msgspec.json.decode(frame)
    op = sent.get("op")
    if op not in ("auth", "subscribe", "unsubscribe"):
        return None
    if name == PRIVATE:
        return _OK_PRIVATE.format(op=op)
    return _OK_PUBLIC.format(op=op, req=sent.get("req_id", ""))


# --- the simulator in its own process ---------------------------------------------------------


class SimProcess:
    """`bybit-hybrid sim` as a child process; `url` once it listens."""

    def __init__(
        self,
        symbols: int,
        positions: int,
        rate_hz: float,
        *,
        stamp: bool = True,
        tick_slices: int = 1,
        random_phases: bool = False,
    ) -> None:
        self.args = [
            sys.executable,
            "-m",
            "bybit_hybrid",
            "sim",
            "--host",
            HOST,
            "--port",
            "0",
            "--symbols",
            str(symbols),
            "--positions",
            str(positions),
            "--rate",
            str(rate_hz),
            "--seed",
            "1",
            "--log-level",
            "WARNING",
            "--tick-slices",
            str(tick_slices),
        ]
        if stamp:
            self.args.append("--stamp-send-us")
        if random_phases:
            self.args.append("--random-phases")
        self.proc: asyncio.subprocess.Process | None = None
        self.url = ""

    async def __aenter__(self) -> SimProcess:
        self.proc = await asyncio.create_subprocess_exec(*self.args, stdout=asyncio.subprocess.PIPE)
        assert self.proc.stdout is not None
        line = (await asyncio.wait_for(self.proc.stdout.readline(), 60)).decode()
        if not line.startswith("listening on "):
            raise RuntimeError(f"sim did not start: {line!r}")
        self.url = line.split()[-1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of another process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def now_us() -> int:
    return time.time_ns() // 1000
