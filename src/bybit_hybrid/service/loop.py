"""The event loop of the long-running commands: asyncio, or uvloop when installed and chosen."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, Literal, TypeVar

from bybit_hybrid.errors import ConfigError

T = TypeVar("T")
Loop = Literal["asyncio", "uvloop"]

log = logging.getLogger(__name__)


def choose_loop(choice: str) -> Loop:
    """The loop `choice` (the `event_loop` setting) stands for on this machine.

    `auto` is uvloop when it can be imported (never on Windows), else asyncio; `uvloop`
    without uvloop installed is a one-line `ConfigError`.
    """
    if choice == "asyncio":
        return "asyncio"
    if choice not in ("auto", "uvloop"):
        raise ConfigError(f"event_loop {choice!r} is not one of auto, asyncio, uvloop")
    if _uvloop_importable():
        return "uvloop"
    if choice == "uvloop":
        raise ConfigError(
            "event_loop is uvloop but uvloop is not installed: pip install 'bybit-hybrid[uvloop]'"
        )
    return "asyncio"


def run_loop(main: Coroutine[Any, Any, T], choice: str) -> T:
    """Runs `main` to completion on the loop `choice` picks, logging which one once."""
    try:
        loop = choose_loop(choice)
    except ConfigError:
        main.close()  # never started: no "coroutine was never awaited" warning
        raise
    log.info("event loop: %s", loop)
    if loop == "uvloop":
        import uvloop  # noqa: PLC0415  # optional extra

        result: T = uvloop.run(main)  # typed even where the extra (and its stubs) is absent
        return result
    return asyncio.run(main)


def _uvloop_importable() -> bool:
    try:
        import uvloop  # noqa: F401, PLC0415  # optional extra; absent on Windows
    except ImportError:
        return False
    return True
