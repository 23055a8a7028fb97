"""Measurement: a completely quiet public shard, live and then black-holed (issue 19 item 3).

    .venv/bin/python bench/quiet_shard.py [--ping 20 --pong 10] [--idle-ping S] [--quiet-s 45]
                                          [--runs 1]

Production `RolloutConfig` and `HybridConfig`, except the public heartbeat given here (the idle
ping is the rollout shell's, 2 s from the failover thresholds, unless `--idle-ping` sets it;
`--idle-ping 1e9` turns it off: the 20 s cadence alone, as before issue 19 item 3). The
simulator holds BTCUSDT and ETHUSDT and stops its price walk for every symbol: Bybit then pushes
nothing at all on the public socket, whose only traffic is the answers to our pings. Phase 1
(`--quiet-s`): the quiet shard is live; every switch away from STREAMING and every alert is
false. Phase 2: the public socket is black-holed (TCP up, nothing sent, no pong); measured from
the black hole: the first symbol DEGRADED and POLLING (the marks go to REST), and the public
socket declared dead (its session leaves LIVE/STALE: the pong is overdue).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchlib import machine, table

from bybit_hybrid.protocol.alerts import AlertRaised
from bybit_hybrid.protocol.failover import ACCOUNT, FailoverSwitched, FeedMode
from bybit_hybrid.protocol.hybrid import CoreEvent, HybridConfig
from bybit_hybrid.protocol.session import SessionConfig, SessionState
from bybit_hybrid.service.streams import rollout_stream
from bybit_hybrid.sim import SimConfig, SimServer

PUBLIC = "public-1"
_UP = (SessionState.LIVE, SessionState.STALE)
POLL_S = 0.02  # how often phase 2 looks at the session state (the measurement's resolution)


@dataclasses.dataclass
class Row:
    ping_s: float
    pong_s: float
    idle_s: float | None
    quiet_s: float
    false_degraded: int = 0
    false_polling: int = 0
    false_alerts: int = 0
    degraded_s: float | None = None
    polling_s: float | None = None
    dead_s: float | None = None

    def cells(self) -> list[object]:
        def fmt(value: float | None) -> str:
            return "-" if value is None else f"{value:.1f}"

        return [
            f"{self.ping_s:g} / {self.pong_s:g}",
            "2 (rollout)" if self.idle_s is None else ("off" if self.idle_s > 1e6 else self.idle_s),
            f"{self.quiet_s:g}",
            self.false_degraded,
            self.false_polling,
            self.false_alerts,
            fmt(self.degraded_s),
            fmt(self.polling_s),
            fmt(self.dead_s),
        ]


async def run(ping_s: float, pong_s: float, idle_s: float | None, quiet_s: float, seed: int) -> Row:
    row = Row(ping_s, pong_s, idle_s, quiet_s)
    events: list[tuple[float, CoreEvent]] = []
    session = SessionConfig(
        ping_interval_s=ping_s,
        pong_timeout_s=pong_s,
        stale_after_s=ping_s + pong_s,
        idle_ping_s=idle_s,
    )
    config = HybridConfig(session=session)
    sim_config = SimConfig(symbols=5, positions=2, rate_hz=10.0, seed=seed)
    async with SimServer(sim_config) as sim:
        stream = rollout_stream(
            "hybrid",
            sim.api_key,
            sim.api_secret,
            base_url=sim.base_url,
            config=config,
            rng=random.Random(seed),
        )
        stream.add_listener(lambda e: events.append((time.monotonic(), e)))
        await stream.start()
        try:
            await stream.wait_ready(30.0)
            await asyncio.sleep(12.0)  # past the alerts' start-up grace (not a wait for logic)
            sim.pause_ticks()
            quiet_from = time.monotonic()
            await asyncio.sleep(quiet_s)  # the quiet phase's length
            _count_false(row, events, quiet_from)
            sim.blackhole("public")
            holed = time.monotonic()
            core = stream.hybrid.core
            deadline = holed + 2 * (ping_s + pong_s) + 10.0
            while time.monotonic() < deadline:
                if row.dead_s is None and core.session(PUBLIC).state not in _UP:
                    row.dead_s = time.monotonic() - holed
                row.polling_s = _first(events, holed, FeedMode.POLLING)
                if row.dead_s is not None and row.polling_s is not None:
                    break
                await asyncio.sleep(POLL_S)
            row.degraded_s = _first(events, holed, FeedMode.DEGRADED)
        finally:
            sim.blackhole("public", on=False)
            await stream.stop()
    return row


def _count_false(row: Row, events: list[tuple[float, CoreEvent]], since: float) -> None:
    for at, event in events:
        if at < since:
            continue
        if isinstance(event, FailoverSwitched) and event.scope != ACCOUNT:
            row.false_degraded += event.new is FeedMode.DEGRADED
            row.false_polling += event.new is FeedMode.POLLING
        elif isinstance(event, AlertRaised):
            row.false_alerts += 1


def _first(events: list[tuple[float, CoreEvent]], since: float, mode: FeedMode) -> float | None:
    for at, event in events:
        if (
            at >= since
            and isinstance(event, FailoverSwitched)
            and event.scope != ACCOUNT
            and event.new is mode
        ):
            return at - since
    return None


HEADERS = (
    "public ping / pong s",
    "idle ping s",
    "quiet s",
    "quiet: to degraded",
    "quiet: to polling",
    "quiet: alerts",
    "hole: degraded after s",
    "hole: polling after s",
    "hole: socket dead after s",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ping", type=float, default=20.0, help="public ping interval, s")
    parser.add_argument("--pong", type=float, default=10.0, help="public pong timeout, s")
    parser.add_argument("--idle-ping", type=float, default=None, help="public idle ping, s")
    parser.add_argument("--quiet-s", type=float, default=45.0)
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    logging.basicConfig(level=logging.CRITICAL)
    rows = [
        asyncio.run(run(args.ping, args.pong, args.idle_ping, args.quiet_s, seed=19 + i))
        for i in range(args.runs)
    ]
    print(machine())
    print(table(HEADERS, [r.cells() for r in rows]))


if __name__ == "__main__":
    main()
