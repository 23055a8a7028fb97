"""bybit-hybrid: a live Bybit V5 position book from the private and public WebSockets.

A lazy package face (PEP 562): the streams load (with aiohttp and asyncio) on first use of their
names, so `import bybit_hybrid.protocol.hybrid` or `bybit_hybrid.wire` costs no I/O imports.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = [
    "AdaptiveBybitStream",
    "BybitHybridStream",
    "ConfigError",
    "KeyRejectedError",
    "__version__",
]

# The errors module imports nothing: eager, so `except bybit_hybrid.KeyRejectedError` is cheap.
from bybit_hybrid.errors import ConfigError, KeyRejectedError

if TYPE_CHECKING:
    from bybit_hybrid.rollout.poller import AdaptiveBybitStream
    from bybit_hybrid.stream import BybitHybridStream

_LAZY = {
    "AdaptiveBybitStream": "bybit_hybrid.rollout.poller",
    "BybitHybridStream": "bybit_hybrid.stream",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'bybit_hybrid' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
