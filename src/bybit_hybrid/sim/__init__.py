"""Embedded Bybit V5 simulator: a pure exchange served over loopback WebSocket + REST."""

from bybit_hybrid.sim.exchange import Exchange, ExchangeError
from bybit_hybrid.sim.faults import ConnKind, RestErrorMode, Target
from bybit_hybrid.sim.history import CloseReason, EventKind, HistoryEvent
from bybit_hybrid.sim.positions import PositionMode, Side, TriggerBy
from bybit_hybrid.sim.server import DEMO_API_KEY, DEMO_API_SECRET, SimConfig, SimServer

__all__ = [
    "DEMO_API_KEY",
    "DEMO_API_SECRET",
    "CloseReason",
    "ConnKind",
    "EventKind",
    "Exchange",
    "ExchangeError",
    "HistoryEvent",
    "PositionMode",
    "RestErrorMode",
    "Side",
    "SimConfig",
    "SimServer",
    "Target",
    "TriggerBy",
]
