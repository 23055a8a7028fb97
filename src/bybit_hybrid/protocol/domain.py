"""The shared domain values, re-exported from `bybit_hybrid.domain` for imports of this path."""

from bybit_hybrid.domain import *  # noqa: F403
