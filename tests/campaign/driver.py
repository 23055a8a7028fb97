"""Seeded fault campaigns: the full stack (hybrid stream + router + protection) against the sim.

One run (`run_campaign(seed, db_dir)`) starts a simulator, a consumer `RolloutStream` in hybrid
mode with REST failover, and the protected process (`stack.py`: its own hybrid stream and
`UnifiedProtection` on a tmp SQLite file). A `random.Random(seed)` schedule then interleaves
exchange activity (opens, size changes, closes in one-way and hedge mode, price pushes through the
trailing activation and back through the stop) with every fault the simulator can inject: socket
and REST faults, trading faults (`trading.py`: trading-stop failures per retCode by count and by
window, timeouts, lost and delayed replies, hand-set stops while our reply is in flight, partial
fills and failed orders on market closes), restarts mid-trail and monitor-only -> live. The pauses
between steps are the schedule's own idea of time passing in the world, not waits for logic: every
wait for an outcome goes through `wait_for`.

The protection invariant is checked against the simulator's own position and stop state after
every step and every SAMPLE_S (`invariants.ProtectionMonitor`); the stream invariants against its
history after the run (`_check`). Each broken one becomes a line in `CampaignResult.violations`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from bybit_hybrid.protocol.domain import PositionKey
from bybit_hybrid.protocol.events import MarkUpdated, PositionClosed, PositionOpened
from bybit_hybrid.protocol.failover import FailoverSwitched, FeedMode
from bybit_hybrid.protocol.hybrid import BadFrame, CoreEvent
from bybit_hybrid.rollout.modes import RolloutStream
from bybit_hybrid.service.streams import rollout_stream
from bybit_hybrid.sim import CloseReason, EventKind, HistoryEvent, SimConfig, SimServer
from tests.campaign.invariants import ProtectionMonitor, stops_of
from tests.campaign.stack import ProtectionStack, start_stack
from tests.campaign.trading import TRADING_FAULTS, trading_fault
from tests.integration.rollout_harness import ROLLOUT
from tests.integration.stream_harness import CONFIG, assert_contract, is_server_task
from tests.support import UNIT_S, wait_for

Key = tuple[str, int]

# Every fault the simulator can inject (sim/faults.py, sim/trading_faults.py, SimServer.faults),
# plus restarts of the protected process.
STACK_FAULTS = ("restart_mid_trail", "monitor_only_then_live")
SOCKET_FAULTS = (
    "drop_clean",
    "drop_abrupt",
    "silence",
    "refuse",
    "reject_auth",
    "delay",
    "malformed",
    "unknown_topic",
    "rest_10006",
    "rest_10002",
    "rest_5xx",
    "idle_cut",
    "stale_mark",
    "mute",
)
FAULTS = SOCKET_FAULTS + TRADING_FAULTS + STACK_FAULTS
ONE_WAY = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
SYMBOLS_N = 6
# Slack on the staleness threshold: the failover samples every eval interval and our sampler
# every SAMPLE_S, and a walk tick may leave the mark unchanged.
SAMPLE_S = 0.05
STALE_SLACK_S = 0.75 * UNIT_S
# Rule 1 of the invariant: a position whose mark is through the trail's stop is closed within this
# (from when the stack is up and the order path healthy): the stale-mark failover (1 unit), a REST
# timeout (1 unit), the retry budget and the private stream's report of the fill.
CLOSE_BOUND_S = 5.0 * UNIT_S


@dataclass
class CampaignResult:
    seed: int
    faults: Counter[str] = field(default_factory=Counter)
    opens: int = 0
    closes: int = 0
    stop_requests: int = 0
    crossings: int = 0
    our_closes: int = 0
    bad_frames: int = 0
    failovers: int = 0
    violations: list[str] = field(default_factory=list)
    duration_s: float = 0.0

    def row(self) -> list[object]:
        return [
            self.seed,
            sum(self.faults.values()),
            self.opens,
            self.closes,
            self.stop_requests,
            self.crossings,
            self.our_closes,
            self.failovers,
            len(self.violations),
        ]


@dataclass
class _Observer:
    """What the consumers saw: seed-API deliveries and core events, stamped with monotonic time."""

    deliveries: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    events: list[tuple[float, CoreEvent]] = field(default_factory=list)
    last_mark_at: dict[Key, float] = field(default_factory=dict)
    last_mark: dict[Key, Decimal] = field(default_factory=dict)
    # The last sample at which the consumer's mark was the exchange's (see `sample`).
    right_at: dict[Key, float] = field(default_factory=dict)
    open_since: dict[Key, float] = field(default_factory=dict)
    fallback: dict[str, FeedMode] = field(default_factory=dict)
    fallback_until: dict[str, float] = field(default_factory=dict)
    stale: list[str] = field(default_factory=list)
    handler_errors: list[str] = field(default_factory=list)

    async def handler(self, name: str, payload: dict[str, Any]) -> None:
        now = time.monotonic()
        try:
            assert name == "position_update" and payload["exchange"] == "bybit"
            assert_contract(payload["data"])
        except AssertionError as exc:
            self.handler_errors.append(f"off-contract delivery {payload}: {exc}")
        self.delivered(payload["data"], now)

    def delivered(self, data: dict[str, Any], now: float) -> None:
        """One delivery's data as the consumer saw it at `now`."""
        self.deliveries.append((now, data))
        key = (data["symbol"], data["position_idx"])
        if data["status"] == "closed":
            self.open_since.pop(key, None)
            self.last_mark_at.pop(key, None)
            self.last_mark.pop(key, None)
            self.right_at.pop(key, None)
            return
        self.open_since.setdefault(key, now)
        if data["mark_price"] is not None:
            self.last_mark_at[key] = now
            self.last_mark[key] = Decimal(str(data["mark_price"]))

    def listener(self, event: CoreEvent) -> None:
        self.saw_event(event, time.monotonic())

    def saw_event(self, event: CoreEvent, now: float) -> None:
        """One core event (a failover switch declares or ends a fallback) seen at `now`."""
        self.events.append((now, event))
        if isinstance(event, FailoverSwitched):
            if event.new is FeedMode.STREAMING:
                self.fallback.pop(event.scope, None)
                # Back to streaming: the first fresh frames are on their way.
                self.fallback_until[event.scope] = now + STALE_SLACK_S
            else:
                self.fallback[event.scope] = event.new

    def declared(self, symbol: str, now: float) -> bool:
        for scope in ("account", symbol):
            if scope in self.fallback or self.fallback_until.get(scope, 0.0) > now:
                return True
        return False

    def sample(self, threshold_s: float, now: float, marks: Callable[[str], Decimal]) -> None:
        """A consumer's mark that has been wrong for longer than the threshold (plus slack)
        needs a declared fallback. Wrong means: no mark delivered for that long *and* the
        exchange's mark not the consumer's all that time. A quiet market (or a paused symbol)
        is a live feed whose mark is right (docs/rollout.md, frozen marks), so the age counts
        from the later of the last delivery and the last sample at which the consumer's mark
        was still the exchange's: when a quiet mark finally moves, the stream has the
        threshold from that move to deliver it, not from the last delivery before the quiet
        stretch (which the product cannot know to be wrong until the exchange moves)."""
        for key, since in self.open_since.items():
            if self.last_mark.get(key) == marks(key[0]):
                self.right_at[key] = now
                continue
            heard = max(self.last_mark_at.get(key, since), since, self.right_at.get(key, since))
            age = now - heard
            if age > threshold_s + STALE_SLACK_S and not self.declared(key[0], now):
                self.stale.append(f"{key}: mark {age:.2f}s old without a declared fallback")

    def lifecycle(self) -> tuple[dict[Key, list[str]], list[str]]:
        seen: dict[Key, list[str]] = {}
        open_keys: set[Key] = set()
        problems: list[str] = []
        for _, d in self.deliveries:
            key = (d["symbol"], d["position_idx"])
            if d["status"] == "closed":
                if key not in open_keys:
                    problems.append(f"duplicate or orphan close event for {key}")
                    continue
                open_keys.discard(key)
                seen.setdefault(key, []).append("close")
            elif key not in open_keys:
                open_keys.add(key)
                seen.setdefault(key, []).append("open")
        return seen, problems

    def saw(self, key: Key, status: str, count: int) -> Callable[[], bool]:
        def check() -> bool:
            seen, _ = self.lifecycle()
            return seen.get(key, []).count(status) >= count

        return check


def exchange_lifecycle(history: list[HistoryEvent]) -> dict[Key, list[str]]:
    seen: dict[Key, list[str]] = {}
    for event in history:
        if event.kind in (EventKind.OPEN, EventKind.CLOSE) and event.position_idx is not None:
            seen.setdefault((event.symbol, event.position_idx), []).append(event.kind.value)
    return seen


class Campaign:
    """One seeded run; see the module docstring."""

    def __init__(
        self, seed: int, db_dir: Path, *, steps: int = 32, fault_share: float = 0.55
    ) -> None:
        self.seed = seed
        self.fault_share = fault_share
        self.rng = random.Random(seed)
        self.db_path = db_dir / f"campaign-{seed}.sqlite3"
        self.steps = steps
        self.result = CampaignResult(seed)
        self.obs = _Observer()
        self.sim = SimServer(SimConfig(symbols=SYMBOLS_N, positions=0, seed=seed, rate_hz=20.0))
        self.symbols: list[str] = []
        self.hedge: list[str] = []
        self.expected: Counter[tuple[Key, str]] = Counter()
        self.monitor = ProtectionMonitor(self.sim, CLOSE_BOUND_S)
        self.stack: ProtectionStack | None = None
        self.stack_bad_frames = 0
        # Each fault once (in seeded order) before any repeats, so every run covers them all.
        self.unplayed = list(FAULTS)
        self.rng.shuffle(self.unplayed)

    # --- the run ------------------------------------------------------------------------------

    async def run(self) -> CampaignResult:
        started = time.monotonic()
        tasks_before = asyncio.all_tasks()
        loop = asyncio.get_running_loop()
        loop_errors: list[dict[str, Any]] = []
        previous_handler = loop.get_exception_handler()
        loop.set_exception_handler(lambda _loop, context: loop_errors.append(context))
        errors = _LogWatch()
        package_log = logging.getLogger("bybit_hybrid")
        package_log.addHandler(errors)
        level = package_log.level
        package_log.setLevel(logging.WARNING)
        sockets_before = open_sockets()
        try:
            await self.sim.start()
            try:
                await self._with_stack(tasks_before)
            finally:
                await self.sim.stop()
            await wait_for(
                lambda: not _client_tasks(tasks_before), 2 * UNIT_S, "no task after stop()"
            )
            await wait_for(
                lambda: open_sockets() <= sockets_before, 2 * UNIT_S, "every socket closed"
            )
        except AssertionError as exc:
            self.result.violations.append(f"timeout/assertion: {exc}")
        finally:
            loop.set_exception_handler(previous_handler)
            package_log.removeHandler(errors)
            package_log.setLevel(level)
        if errors.records:
            self.result.violations.append(f"exceptions logged: {errors.records[:3]}")
        if errors.bad_frames != self.result.bad_frames:
            self.result.violations.append(
                f"{self.result.bad_frames} bad frames reported, {errors.bad_frames} logged"
            )
        leftover = _client_tasks(tasks_before)
        if leftover:
            self.result.violations.append(f"tasks leaked after stop(): {leftover}")
        if loop_errors:
            self.result.violations.append(f"exception escaped to the loop: {loop_errors[:3]}")
        self.result.duration_s = time.monotonic() - started
        return self.result

    async def _with_stack(self, tasks_before: set[asyncio.Task[Any]]) -> None:
        sim = self.sim
        self.symbols = sorted(sim.exchange.instruments)[:SYMBOLS_N]
        self.hedge = [s for s in self.symbols if s not in ONE_WAY][:2]
        for symbol in self.hedge:
            await sim.set_position_mode(symbol, "hedge")
        stream = rollout_stream(
            "hybrid",
            sim.api_key,
            sim.api_secret,
            self.obs.handler,
            base_url=sim.base_url,
            rollout=ROLLOUT,
            config=CONFIG,
            rng=random.Random(self.seed),
        )
        stream.add_listener(self.obs.listener)
        sampler: asyncio.Task[None] | None = None
        try:
            await stream.start()
            await stream.wait_ready(3 * UNIT_S)
            await self._start_protection(monitor_only=False)
            sampler = asyncio.create_task(self._sample(), name="campaign-sampler")
            for _ in range(self.steps):
                await self._step()
                self.monitor.check()
            await self._heal()
            await self._converge(stream)
        finally:
            if sampler is not None:
                sampler.cancel()
                await asyncio.gather(sampler, return_exceptions=True)
            await stream.stop()
            await self._stop_protection()
        self._check(stream)
        await wait_for(lambda: not sim.connections, 2 * UNIT_S, "the sim to see every socket close")

    @property
    def protection(self) -> Any:
        return None if self.stack is None else self.stack.protection

    async def _start_protection(self, *, monitor_only: bool) -> None:
        self.stack = await start_stack(
            self.sim,
            self.db_path,
            seed=self.seed + len(self.result.faults),
            monitor_only=monitor_only,
            listener=self._stack_listener,
        )
        self.monitor.stack_up(self.stack.protection, live=not monitor_only)

    def _stack_listener(self, event: CoreEvent) -> None:
        if isinstance(event, BadFrame):
            self.stack_bad_frames += 1

    async def _stop_protection(self) -> None:
        stack, self.stack = self.stack, None
        self.monitor.stack_down()
        if stack is not None:
            await stack.stop()

    async def _restart(self, *, monitor_only: bool) -> None:
        """The protected process stops; the market moves on while it is down; it starts again."""
        await self._stop_protection()
        for key in self.open_keys()[:2]:
            sign = self.sim.exchange.positions[key].side.sign
            self.sim.set_trend(key[0], self.rng.choice([sign * 20, -sign * 40]))
        await asyncio.sleep(self.rng.uniform(0.05, 0.3) * UNIT_S)
        await self._start_protection(monitor_only=monitor_only)

    async def _sample(self) -> None:
        # A mark frozen on a live socket (muted ticker, stale_mark) switches only once one REST
        # sample contradicts it (issue 19 F4); a sample that fails (the campaign's REST faults)
        # is taken again one stretch later.
        threshold = 2 * ROLLOUT.failover.mark_stale_s
        while True:
            await asyncio.sleep(SAMPLE_S)
            self.obs.sample(threshold, time.monotonic(), self.sim.exchange.prices.mark)
            self.monitor.check()

    # --- the schedule -------------------------------------------------------------------------

    async def _step(self) -> None:
        rng = self.rng
        roll = rng.random()
        if roll >= self.fault_share or not self.open_keys():
            await self._exchange_action()
        else:
            await self._fault(self.unplayed.pop() if self.unplayed else rng.choice(FAULTS))
        # The world moves on for a while before the next step (not a wait for logic).
        await asyncio.sleep(rng.uniform(0.05, 0.4) * UNIT_S)

    def open_keys(self) -> list[Key]:
        return [(p.symbol, p.idx) for p in self.sim.exchange.open_positions()]

    def free_slots(self) -> list[Key]:
        taken = set(self.open_keys())
        slots = [(s, 0) for s in self.symbols if s not in self.hedge]
        slots += [(s, i) for s in self.hedge for i in (1, 2)]
        return [k for k in slots if k not in taken]

    async def _exchange_action(self) -> None:
        rng, sim = self.rng, self.sim
        open_keys = self.open_keys()
        free = self.free_slots()
        choice = rng.random()
        if free and (not open_keys or choice < 0.4):
            symbol, idx = rng.choice(free)
            side = {1: "Buy", 2: "Sell"}.get(idx, rng.choice(["Buy", "Sell"]))
            inst = sim.exchange.instruments[symbol]
            qty = inst.min_order_qty * rng.randint(1, 5)
            await sim.open_position(symbol, side, qty, idx)
            await self.expect((symbol, idx), "open")
        elif choice < 0.55 and open_keys:
            symbol, idx = rng.choice(open_keys)
            pos = sim.exchange.positions[(symbol, idx)]
            inst = sim.exchange.instruments[symbol]
            await sim.change_position(symbol, idx, size=pos.size + inst.min_order_qty)
        elif choice < 0.8 and open_keys:
            await self.push_through_activation(rng.choice(open_keys))
        elif open_keys:
            key = rng.choice(open_keys)
            await sim.close_position(*key)
            await self.expect(key, "close")

    async def push_through_activation(self, key: Key, *, trend: bool = True) -> None:
        """Mark past the trailing activation (or 0.5-1.5 % past the current mark when already
        there), held until a stop is sent (or faults delay it past a deadline, which is no
        violation), then maybe a trend that may run back through the stop."""
        sim = self.sim
        pos = sim.exchange.positions[key]
        if not pos.is_open:
            return  # closed meanwhile (its stop fired during an earlier step of this fault)
        inst = sim.exchange.instruments[key[0]]
        sign = pos.side.sign
        pct = Decimal(self.rng.choice(["0.025", "0.03", "0.04"]))
        step = Decimal(self.rng.choice(["0.005", "0.01", "0.015"]))
        mark = sim.exchange.prices.mark(key[0])
        target = pos.avg_price * (1 + sign * pct)
        if (mark - target) * sign > 0:
            target = mark * (1 + sign * step)
        target = (target / inst.tick_size).to_integral_value() * inst.tick_size
        before = self._stop_requests(key), self._trail_stops(key)
        sim.pause_ticks(key[0])
        try:
            await sim.set_prices(key[0], mark=target, last=target)
            with contextlib.suppress(AssertionError):
                await wait_for(
                    lambda: (
                        not pos.is_open
                        or self._stop_requests(key) > before[0]
                        or (
                            self.stack is not None
                            and self.stack.monitor_only
                            and self._trail_stops(key) != before[1]
                        )
                    ),
                    2 * UNIT_S,
                    f"a trailing stop for {key}",
                )
        finally:
            sim.resume_ticks(key[0])
        if trend:
            # Up (for the position) a little, or back down through the trail.
            sim.set_trend(key[0], self.rng.choice([sign * 20, -sign * 40, -sign * 80]))
        else:
            sim.set_trend(key[0], 0)

    def _trail_stops(self, key: Key) -> list[Decimal]:
        protection = self.protection
        trail = None if protection is None else protection.trailing.trail(PositionKey(*key))
        return [] if trail is None else stops_of(trail)

    def _stop_requests(self, key: Key) -> int:
        return sum(
            1
            for e in self.sim.exchange.history
            if e.kind is EventKind.TRADING_STOP and (e.symbol, e.position_idx) == key
        )

    async def expect(self, key: Key, status: str) -> None:
        """Every open and close must reach the consumers; none may be lost even under faults."""
        self.expected[(key, status)] += 1
        what = f"the consumers to see {status} #{self.expected[(key, status)]} of {key}"
        try:
            await wait_for(
                self.obs.saw(key, status, self.expected[(key, status)]), 8 * UNIT_S, what
            )
        except AssertionError as exc:
            self.result.violations.append(f"lost {status}: {exc}")

    async def _fault(self, name: str) -> None:
        self.result.faults[name] += 1
        if name in TRADING_FAULTS:
            await trading_fault(self, name)
        elif name == "restart_mid_trail":
            keys = self.open_keys()
            if keys:
                await self.push_through_activation(self.rng.choice(keys), trend=False)
            await self._restart(monitor_only=False)
        elif name == "monitor_only_then_live":
            await self._restart(monitor_only=True)
            for key in self.open_keys()[:2]:
                await self.push_through_activation(key, trend=False)
            await self._restart(monitor_only=False)
        else:
            await self._socket_fault(name)

    async def _socket_fault(self, name: str) -> None:
        rng, faults = self.rng, self.sim.faults
        target = rng.choice(["public", "private", "all"])
        symbol = rng.choice(self.symbols)
        if name == "drop_clean":
            await faults.drop(target)
        elif name == "drop_abrupt":
            await faults.drop(target, abrupt=True)
        elif name == "silence":
            faults.silence(target)
        elif name == "refuse":
            faults.refuse_connections(rng.uniform(0.2, 1.0) * UNIT_S)
        elif name == "reject_auth":
            faults.reject_auth(count=rng.randint(1, 2))
            await faults.drop("private")
        elif name == "delay":
            faults.delay_frames(rng.randint(20, 300))
        elif name == "malformed":
            faults.send_malformed(target)
        elif name == "unknown_topic":
            faults.send_unknown_topic(target, f"tickers.NOPE{rng.randint(0, 99)}USDT")
        elif name in ("rest_10006", "rest_10002", "rest_5xx"):
            mode = name.removeprefix("rest_")
            faults.rest_errors(mode, count=rng.randint(1, 3))
        elif name == "idle_cut":
            faults.cut_idle(0.0)
        elif name == "stale_mark":
            faults.stale_mark(symbol, on=rng.random() < 0.7)
        elif name == "mute":
            faults.mute(symbol, on=rng.random() < 0.7)
        if name == "delay" or rng.random() < 0.3:
            # Lingering faults (delay, stale marks, mutes) end at some later step.
            await asyncio.sleep(rng.uniform(0.1, 0.5) * UNIT_S)
            faults.delay_frames(0)

    async def _heal(self) -> None:
        self.sim.faults.clear()
        for symbol in self.symbols:
            self.sim.faults.stale_mark(symbol, on=False)
            self.sim.faults.mute(symbol, on=False)
            self.sim.set_trend(symbol, 0)

    async def _converge(self, stream: RolloutStream) -> None:
        sim = self.sim
        protection = self.protection

        def settled() -> bool:
            history = list(sim.exchange.history)
            seen, _ = self.obs.lifecycle()
            if seen != exchange_lifecycle(history):
                return False
            if _book(stream) != _exchange_book(sim):
                return False
            managed = {(m.key.symbol, m.key.idx) for m in protection.manager.positions()}
            return managed == set(_exchange_book(sim)) and protection.idle()

        try:
            await wait_for(settled, 12 * UNIT_S, "book, consumers and protection to converge")
        except AssertionError as exc:
            self.result.violations.append(str(exc))

    # --- the invariants -----------------------------------------------------------------------

    def _check(self, stream: RolloutStream) -> None:
        history = list(self.sim.exchange.history)
        result, obs = self.result, self.obs
        expected = exchange_lifecycle(history)
        seen, problems = obs.lifecycle()
        result.violations += problems
        result.opens = sum(v.count("open") for v in expected.values())
        result.closes = sum(v.count("close") for v in expected.values())
        if seen != expected:
            lost = {k: (expected.get(k), seen.get(k)) for k in expected.keys() | seen.keys()}
            lost = {k: v for k, v in lost.items() if v[0] != v[1]}
            result.violations.append(f"lifecycle differs (exchange, consumers): {lost}")
            for key in lost:
                trail = [
                    f"{t:.2f}:{d['status']}:{d.get('size')}@{d.get('entry_price')}"
                    f"/{d.get('source')}/ts={d.get('exchange_ts')}"
                    for t, d in obs.deliveries
                    if (d["symbol"], d["position_idx"]) == key
                ]
                result.violations.append(f"  {key} deliveries: {_squash(trail)}")
        book, exchange = _book(stream), _exchange_book(self.sim)
        if book != exchange:
            result.violations.append(f"final book {book} != exchange {exchange}")
        self.monitor.check()
        result.violations += self.monitor.violations
        result.crossings = self.monitor.crossings
        result.violations += sorted(set(obs.stale))[:5]
        result.violations += obs.handler_errors[:5]
        stats = stream.get_stats()
        if stats.get("handler_errors", 0):
            result.violations.append(f"handler errors: {stats['handler_errors']}")
        result.stop_requests = sum(1 for e in history if e.kind is EventKind.TRADING_STOP)
        # Closes by protection's own market orders, as the simulator saw them.
        result.our_closes = sum(
            1 for e in history if e.kind is EventKind.CLOSE and e.reason is CloseReason.ORDER
        )
        result.bad_frames = self.stack_bad_frames + sum(
            1 for _, e in obs.events if isinstance(e, BadFrame)
        )
        result.failovers = sum(1 for _, e in obs.events if isinstance(e, FailoverSwitched))
        # Marks and lifecycle events reached the router side too (the core listener).
        for _, event in obs.events:
            if isinstance(event, PositionOpened | PositionClosed | MarkUpdated):
                view = event.view
                if not isinstance(view.size, Decimal):
                    result.violations.append(f"non-Decimal size in {event}")


def _squash(items: list[str]) -> list[str]:
    """Consecutive deliveries that differ only in time (mark updates) shown once."""
    out: list[str] = []
    for item in items:
        if not out or out[-1].split(":", 1)[1] != item.split(":", 1)[1]:
            out.append(item)
    return out


def _book(stream: RolloutStream) -> dict[Key, tuple[str | None, Decimal, Decimal | None]]:
    return {
        (v.key.symbol, v.key.idx): (v.side.value if v.side else None, v.size, v.entry_price)
        for v in stream.positions()
    }


def _exchange_book(sim: SimServer) -> dict[Key, tuple[str | None, Decimal, Decimal | None]]:
    return {
        (p.symbol, p.idx): (p.side.value, p.size, p.avg_price)
        for p in sim.exchange.open_positions()
    }


class _LogWatch(logging.Handler):
    """Log records that carry an exception (a crash the code caught and swallowed) and how
    many bad frames were logged (each must be logged exactly once)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[str] = []
        self.bad_frames = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info is not None and record.levelno >= logging.ERROR:
            self.records.append(f"{record.name}: {record.getMessage()} ({record.exc_info[1]!r})")
        if "bad frame ignored" in record.getMessage():
            self.bad_frames += 1


def open_sockets() -> int:
    """This process's socket file descriptors (Linux /proc; 0 elsewhere)."""
    try:
        fds = os.listdir("/proc/self/fd")
    except OSError:
        return 0
    count = 0
    for fd in fds:
        with contextlib.suppress(OSError):
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
    return count


def _client_tasks(before: set[asyncio.Task[Any]]) -> list[asyncio.Task[Any]]:
    current = asyncio.current_task()
    return [
        t
        for t in asyncio.all_tasks() - before
        if t is not current and not t.done() and not is_server_task(t)
    ]


async def run_campaign(
    seed: int, db_dir: Path, *, steps: int = 32, fault_share: float = 0.55
) -> CampaignResult:
    """One seeded run; `fault_share` of the steps inject a fault (when a position is open)."""
    return await Campaign(seed, db_dir, steps=steps, fault_share=fault_share).run()
