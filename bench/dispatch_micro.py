"""Micro-benchmark: the cost of delivering one core event to the seed `event_handler`.

    .venv/bin/python bench/dispatch_micro.py [--events 200000] [--repeat 5]

One `MarkUpdated` per step is handed to a started `Fanout` (what the stream does with the
core's events), then the benchmark yields to the loop once (`await asyncio.sleep(0)`), the
way a frame arrives alone in a loop iteration. Reports µs per event (wall, best of
`--repeat`) and asyncio loop iterations per event: delivery that needs its own loop wake-up
costs one iteration more per event than delivery inside the frame's callback.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time
from decimal import Decimal
from typing import Any

from bybit_hybrid.protocol.domain import PositionKey, Side, Source
from bybit_hybrid.protocol.events import MarkUpdated, PositionView
from bybit_hybrid.router.fanout import Fanout


def _event(i: int) -> MarkUpdated:
    view = PositionView(
        key=PositionKey("BTCUSDT", 0),
        side=Side.BUY,
        size=Decimal("0.01"),
        entry_price=Decimal("50000"),
        mark_price=Decimal(50000 + i),
        unrealised_pnl=Decimal(i) / 100,
        leverage=Decimal(10),
        position_status="Normal",
        stop_loss=None,
        take_profit=None,
        trailing_stop=None,
        liq_price=None,
        open_time_ms=None,
        status="open",
        source=Source.TICKER,
        exchange_ts_ms=1,
        cs=i,
        seq=None,
        received_at=0.0,
    )
    return MarkUpdated(view)


async def run_once(events: list[MarkUpdated]) -> tuple[float, float]:
    handled = 0

    async def handler(event: str, payload: dict[str, Any]) -> None:
        nonlocal handled
        handled += 1

    loop = asyncio.get_running_loop()
    iterations = 0
    run_once_ = loop._run_once  # type: ignore[attr-defined]

    def counted() -> None:
        nonlocal iterations
        iterations += 1
        run_once_()

    fanout = Fanout(handler)
    fanout.start()
    await asyncio.sleep(0)
    loop._run_once = counted  # type: ignore[attr-defined]
    gc.collect()
    gc.disable()
    started = time.perf_counter()
    for event in events:
        fanout.emit((event,))
        await asyncio.sleep(0)
    while handled < len(events):  # noqa: ASYNC110  (polling is what is measured)
        await asyncio.sleep(0)
    elapsed = time.perf_counter() - started
    gc.enable()
    loop._run_once = run_once_  # type: ignore[attr-defined]
    await fanout.stop()
    return elapsed / len(events) * 1e6, iterations / len(events)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    events = [_event(i) for i in range(args.events)]
    results = [asyncio.run(run_once(events)) for _ in range(args.repeat)]
    best = min(results)
    print(
        f"fanout delivery: {best[0]:.2f} µs/event (best of {args.repeat}), "
        f"{best[1]:.2f} loop iterations/event"
    )


if __name__ == "__main__":
    main()
