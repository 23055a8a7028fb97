"""Lines on stdout that survive the reader going away (`bybit-hybrid run | head -1`)."""

from __future__ import annotations

import contextlib
import os
import sys


def stdout_to_devnull() -> None:
    """Points the stdout file descriptor at /dev/null, so later writes and the interpreter's
    final flush do not fail on a dead pipe."""
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def say(line: str) -> bool:
    """Prints one line, flushed; False (and nothing raised) once nobody reads stdout.

    For long-running commands: a closed pipe must not stop `run` protecting positions.
    """
    try:
        print(line, flush=True)
    except BrokenPipeError:
        stdout_to_devnull()
        return False
    return True
