"""The `bybit-hybrid` command as a child process, for the CLI tests: spawn it, collect it."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from tests.support import UNIT_S


def clean_env(**env: str) -> dict[str, str]:
    """This process's environment without BYBIT_* and PYTEST* (no key or setting leaks into
    the child from the test run), plus `env`."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("BYBIT_", "PYTEST"))}
    return {**clean, **env}


async def spawn_cli(cwd: Path, env: dict[str, str], *args: str) -> asyncio.subprocess.Process:
    """`python -m bybit_hybrid ARGS` in `cwd` with exactly `env`, stdout and stderr piped."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bybit_hybrid",
        *args,
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def finish_cli(
    proc: asyncio.subprocess.Process, timeout_s: float = 30 * UNIT_S
) -> tuple[int, str, str]:
    """Waits for the child to exit (failing after `timeout_s`): exit code, stdout, stderr."""
    out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def run_cli(cwd: Path, env: dict[str, str], *args: str) -> tuple[int, str, str]:
    """Runs the command to its end: exit code, stdout, stderr."""
    return await finish_cli(await spawn_cli(cwd, env, *args))
