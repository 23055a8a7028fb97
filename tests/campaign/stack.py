"""One life of the protected process in the campaign: its own hybrid stream, REST client, store
and `UnifiedProtection`, started and stopped as a unit (a restart is stop + start on the same
SQLite file; monitor-only is a setting of the life)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bybit_hybrid.protection.store import ProtectionStore
from bybit_hybrid.protection.unified import UnifiedProtection
from bybit_hybrid.rollout.modes import RolloutStream
from bybit_hybrid.router.fanout import CoreListener
from bybit_hybrid.service.settings import load_settings
from bybit_hybrid.service.streams import rollout_stream
from bybit_hybrid.sim import SimServer
from bybit_hybrid.transport.http import AiohttpBackend
from bybit_hybrid.transport.rest import BybitRestClient
from tests.integration.protection_harness import FAST_RETRY, protection_rest
from tests.integration.rollout_harness import ROLLOUT
from tests.integration.stream_harness import CONFIG
from tests.support import UNIT_S

# A REST call unanswered this long is a timeout (the sim's `timeout` faults never answer).
REST_TIMEOUT_S = 1.0 * UNIT_S


async def _ignore(_name: str, _payload: dict[str, Any]) -> None:
    return None


@dataclass
class ProtectionStack:
    stream: RolloutStream
    backend: AiohttpBackend
    rest: BybitRestClient
    store: ProtectionStore
    protection: UnifiedProtection
    monitor_only: bool

    async def stop(self) -> None:
        await self.stream.stop()
        await self.protection.stop()
        await self.rest.close()
        await self.backend.close()
        self.store.close()


async def start_stack(
    sim: SimServer,
    db_path: Path,
    *,
    seed: int,
    monitor_only: bool,
    listener: CoreListener | None = None,
) -> ProtectionStack:
    settings = load_settings(
        overrides={
            "state_db": db_path,
            "mode": "hybrid",
            "trailing_min_update_interval_s": 0,
            "trailing_monitor_only": monitor_only,
        }
    )
    stream = rollout_stream(
        "hybrid",
        sim.api_key,
        sim.api_secret,
        _ignore,
        base_url=sim.base_url,
        rollout=ROLLOUT,
        config=CONFIG,
        rng=random.Random(seed),
    )
    if listener is not None:
        stream.add_listener(listener)
    backend, rest = protection_rest(sim, REST_TIMEOUT_S)
    store = ProtectionStore(db_path)
    protection = UnifiedProtection(settings, rest, store=store, retry=FAST_RETRY)
    protection.attach(stream)
    stack = ProtectionStack(stream, backend, rest, store, protection, monitor_only)
    try:
        await protection.start()
        await stream.start()
        await stream.wait_ready(3 * UNIT_S)
    except BaseException:
        await stack.stop()
        raise
    return stack
