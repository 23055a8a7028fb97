"""Small proxies for tests on 127.0.0.1, free port: HTTP (CONNECT, absolute-form) and SOCKS5.

Both require credentials when given some, count what they carried (`tunnels` by target path or
host), and can be told to refuse. They pipe bytes and understand nothing above the first request
line, as a real proxy would: a WebSocket upgrade through them is just bytes.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import struct
from collections import Counter
from dataclasses import dataclass, field
from typing import Self


@dataclass
class ProxyLog:
    tunnels: Counter[str] = field(default_factory=Counter)  # CONNECT host:port or request path
    refused_auth: int = 0
    seen_auth: list[str] = field(default_factory=list)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


async def _splice(
    client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter],
) -> None:
    await asyncio.gather(_pipe(client[0], upstream[1]), _pipe(upstream[0], client[1]))


class _LoopbackServer:
    """A TCP server on 127.0.0.1 with a free port; `_serve` handles one client."""

    scheme = "http"

    def __init__(self) -> None:
        self.log = ProxyLog()
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> Self:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def url(self, user: str | None = None, password: str | None = None, scheme: str = "") -> str:
        auth = "" if user is None else f"{user}:{password}@"
        return f"{scheme or self.scheme}://{auth}127.0.0.1:{self.port}"

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError


class HttpProxy(_LoopbackServer):
    """An HTTP proxy: CONNECT tunnels, and absolute-form requests forwarded to their origin."""

    def __init__(self, user: str | None = None, password: str | None = None) -> None:
        super().__init__()
        self._auth = None
        if user is not None:
            token = base64.b64encode(f"{user}:{password or ''}".encode()).decode()
            self._auth = f"Basic {token}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            writer.close()
            return
        lines = head.decode("latin-1").split("\r\n")
        method, target, version = lines[0].split(" ", 2)
        headers = [line for line in lines[1:] if line]
        auth = next(
            (
                h.split(":", 1)[1].strip()
                for h in headers
                if h.lower().startswith("proxy-authorization:")
            ),
            None,
        )
        if self._auth is not None and auth != self._auth:
            self.log.refused_auth += 1
            writer.write(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            writer.close()
            return
        if auth:
            self.log.seen_auth.append(auth)
        if method == "CONNECT":
            await self._tunnel(target, reader, writer)
        else:
            await self._forward((method, target, version), headers, reader, writer)

    async def _tunnel(
        self, target: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        host, _, port = target.rpartition(":")
        upstream = await asyncio.open_connection(host, int(port))
        self.log.tunnels[target] += 1
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()
        await _splice((reader, writer), upstream)

    async def _forward(
        self,
        request_line: tuple[str, str, str],
        headers: list[str],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        method, target, version = request_line
        rest = target.split("://", 1)[1]
        hostport, _, path = rest.partition("/")
        host, _, port = hostport.partition(":")
        self.log.tunnels["/" + path.split("?")[0]] += 1
        upstream = await asyncio.open_connection(host, int(port or 80))
        kept = [h for h in headers if not h.lower().startswith("proxy-")]
        head = f"{method} /{path} {version}\r\n" + "".join(h + "\r\n" for h in kept) + "\r\n"
        upstream[1].write(head.encode("latin-1"))
        await upstream[1].drain()
        await _splice((reader, writer), upstream)


class Socks5Proxy(_LoopbackServer):
    """A SOCKS5 proxy (RFC 1928) with optional username/password (RFC 1929), CONNECT only."""

    scheme = "socks5"

    def __init__(self, user: str | None = None, password: str | None = None) -> None:
        super().__init__()
        self._creds = None if user is None else (user.encode(), (password or "").encode())

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if not await self._greet(reader, writer):
                writer.close()
                return
            target = await self._request(reader)
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            return
        host, port = target
        upstream = await asyncio.open_connection(host, port)
        self.log.tunnels[f"{host}:{port}"] += 1
        writer.write(b"\x05\x00\x00\x01" + bytes(4) + struct.pack("!H", 0))
        await writer.drain()
        await _splice((reader, writer), upstream)

    async def _greet(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        version, count = await reader.readexactly(2)
        methods = await reader.readexactly(count)
        wanted = 0x02 if self._creds else 0x00
        if version != 5 or wanted not in methods:
            writer.write(b"\x05\xff")
            self.log.refused_auth += 1
            return False
        writer.write(bytes([5, wanted]))
        if not self._creds:
            return True
        _, ulen = await reader.readexactly(2)
        user = await reader.readexactly(ulen)
        (plen,) = await reader.readexactly(1)
        password = await reader.readexactly(plen)
        ok = (user, password) == self._creds
        writer.write(b"\x01\x00" if ok else b"\x01\x01")
        if not ok:
            self.log.refused_auth += 1
        return ok

    async def _request(self, reader: asyncio.StreamReader) -> tuple[str, int]:
        _, _, _, atyp = await reader.readexactly(4)
        if atyp == 1:
            host = ".".join(str(b) for b in await reader.readexactly(4))
        elif atyp == 3:
            (length,) = await reader.readexactly(1)
            host = (await reader.readexactly(length)).decode()
        else:
            raw = await reader.readexactly(16)
            host = ":".join(raw[i : i + 2].hex() for i in range(0, 16, 2))
        (port,) = struct.unpack("!H", await reader.readexactly(2))
        return host, port
