"""The simulator's configuration (`SimConfig`), its paths and public demo credentials."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from bybit_hybrid.sim.accounts import MAX_ACCOUNTS
from bybit_hybrid.sim.ratelimit import DEFAULT_LIMITS_PER_S
from bybit_hybrid.sim.scenarios import SCENARIOS
from bybit_hybrid.sim.trading_faults import parse_fault_spec

# Public demo credentials of the simulator: safe to print, useless anywhere else.
DEMO_API_KEY: Final = "SIMDEMOKEY000001"
DEMO_API_SECRET: Final = "SIMDEMOSECRET00000000000000000001"
PUBLIC_PATH: Final = "/v5/public/linear"
PRIVATE_PATH: Final = "/v5/private"
DEFAULT_RECV_WINDOW_MS: Final = 5000
MAX_ACTIVE_MIN_S: Final = 30
MAX_ACTIVE_MAX_S: Final = 600
_MAX_ACTIVE_RE: Final = re.compile(r"^(\d+)([sm])$")
POSITION_LIST_PATH: Final = "/v5/position/list"


@dataclass(frozen=True, slots=True)
class SimConfig:
    """Everything the simulator needs; the secret is kept out of repr."""

    symbols: int = 10
    positions: int = 0
    rate_hz: float = 10.0
    seed: int = 1
    host: str = "127.0.0.1"
    port: int = 0
    api_key: str = DEMO_API_KEY
    api_secret: str = field(default=DEMO_API_SECRET, repr=False)
    idle_scan_s: float = 30.0
    default_max_active_s: float = 600.0
    scenario: str = "quiet"
    scenario_period_s: float = 2.0
    send_queue_max: int = 10_000
    rate_limits_per_s: Mapping[str, int] = field(default_factory=lambda: DEFAULT_LIMITS_PER_S)
    # Benchmark-only extension (not Bybit's): ticker data carries `simSendUs`, the epoch time in
    # microseconds at which the frame was handed to the socket, so a client on the same machine
    # can measure sim-write -> callback latency below the 1 ms resolution of `ts`.
    stamp_send_us: bool = False
    # How each tick is spread over its interval: 1 sends every symbol's delta in one burst (the
    # default); N ticks symbol i in slice i % N, the slices evenly spaced, so each symbol still
    # ticks at `rate_hz` but the frames arrive spread out (Bybit does not document whether its
    # per-symbol pushes are aligned; benchmarks measure both shapes).
    tick_slices: int = 1
    # Trading faults armed at start (`--trading-fault`, see sim/trading_faults.parse_fault_spec):
    # e.g. ("trading-stop:10006,seconds=30",) to watch a bot ride out a rate-limit window.
    trading_faults: tuple[str, ...] = ()
    # With `tick_slices` N > 1: each symbol's slice is drawn at random instead of i % N, so the
    # symbols tick on independent phases (some slices empty, some with several symbols).
    random_phases: bool = False
    # Accounts in the simulator (`--accounts`): the first uses api_key/api_secret, account i
    # (1-based) the public demo pair SIMDEMOKEY00000i (sim/accounts.demo_credentials).
    accounts: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.accounts <= MAX_ACCOUNTS:
            raise ValueError(f"accounts must be between 1 and {MAX_ACCOUNTS}")
        if self.symbols < 1:
            raise ValueError("symbols must be at least 1")
        if not 0 <= self.positions <= self.symbols:
            raise ValueError("positions must be between 0 and symbols")
        if not 0 < self.rate_hz <= 1000:
            raise ValueError("rate_hz must be in (0, 1000]")
        if not 1 <= self.tick_slices <= 1000 or self.rate_hz * self.tick_slices > 10_000:
            raise ValueError("tick_slices must be in [1, 1000] and rate_hz * tick_slices <= 10000")
        if self.idle_scan_s <= 0:
            raise ValueError("idle_scan_s must be positive")
        if not self.api_key or not self.api_secret:
            raise ValueError("api_key and api_secret must be non-empty")
        if self.scenario not in SCENARIOS:
            raise ValueError(f"scenario must be one of {', '.join(SCENARIOS)}")
        for spec in self.trading_faults:
            parse_fault_spec(spec)


def parse_max_active_time(raw: str) -> float:
    """`30s`..`600s` or `1m`..`10m` -> seconds; ValueError outside Bybit's documented range."""
    match = _MAX_ACTIVE_RE.match(raw)
    if match is None:
        raise ValueError(f"max_active_time {raw!r} is not like 45s or 2m")
    seconds = int(match[1]) * (60 if match[2] == "m" else 1)
    if not MAX_ACTIVE_MIN_S <= seconds <= MAX_ACTIVE_MAX_S:
        raise ValueError(f"max_active_time {raw!r} is outside 30s..600s")
    return float(seconds)
