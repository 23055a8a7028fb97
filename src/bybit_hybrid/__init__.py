"""bybit-hybrid: a live Bybit V5 position book from the private and public WebSockets."""

__version__ = "0.1.0"

from bybit_hybrid.errors import ConfigError, KeyRejectedError
from bybit_hybrid.rollout.poller import AdaptiveBybitStream
from bybit_hybrid.stream import BybitHybridStream

__all__ = [
    "AdaptiveBybitStream",
    "BybitHybridStream",
    "ConfigError",
    "KeyRejectedError",
    "__version__",
]
