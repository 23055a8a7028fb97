"""The picows listener alone, fed hand-made frames: fragments joined under the bound, the
peer's close code kept, nothing delivered once the socket is ending."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import cast

from picows import WSCloseCode, WSFrame, WSMsgType, WSTransport
from picows.picows import _make_test_ws_frame

from bybit_hybrid.transport.ws_picows import _Listener


@dataclass
class FakeTransport:
    closes: list[WSCloseCode] = field(default_factory=list)
    disconnected: bool = False

    def send_close(self, code: WSCloseCode = WSCloseCode.OK, message: bytes | None = None) -> None:
        self.closes.append(code)

    def disconnect(self, graceful: bool = True) -> None:
        self.disconnected = True


def frame(kind: WSMsgType, payload: bytes, fin: bool = True) -> WSFrame:
    return _make_test_ws_frame(kind, payload, fin, False)


def feed(made: _Listener, transport: FakeTransport, one: WSFrame) -> None:
    made.on_ws_frame(cast(WSTransport, transport), one)


def close_frame(code: int, reason: bytes = b"") -> WSFrame:
    return frame(WSMsgType.CLOSE, code.to_bytes(2, "big") + reason)


def listener(bound: int = 100) -> tuple[_Listener, list[bytes | str], FakeTransport]:
    got: list[bytes | str] = []
    return _Listener(got.append, bound), got, FakeTransport()


async def test_fragments_are_joined_into_one_payload() -> None:
    made, got, transport = listener()
    feed(made, transport, frame(WSMsgType.TEXT, b'{"a":', fin=False))
    feed(made, transport, frame(WSMsgType.CONTINUATION, b"1", fin=False))
    feed(made, transport, frame(WSMsgType.CONTINUATION, b"}"))
    feed(made, transport, frame(WSMsgType.TEXT, b"next"))
    assert got == [b'{"a":1}', b"next"]
    assert not transport.disconnected


async def test_a_joined_message_above_the_bound_closes_with_1009() -> None:
    made, got, transport = listener(bound=8)
    feed(made, transport, frame(WSMsgType.TEXT, b"12345", fin=False))
    feed(made, transport, frame(WSMsgType.CONTINUATION, b"6789"))
    feed(made, transport, frame(WSMsgType.TEXT, b"late"))
    assert got == []
    assert transport.closes == [WSCloseCode.MESSAGE_TOO_BIG] and transport.disconnected
    assert made.reason is not None and "exceeds 8 bytes" in made.reason


async def test_a_single_frame_above_the_bound_is_not_delivered() -> None:
    made, got, transport = listener(bound=4)
    feed(made, transport, frame(WSMsgType.TEXT, b"12345"))
    assert got == [] and transport.closes == [WSCloseCode.MESSAGE_TOO_BIG]


async def test_a_continuation_without_a_start_is_a_protocol_error() -> None:
    made, got, transport = listener()
    feed(made, transport, frame(WSMsgType.CONTINUATION, b"orphan"))
    assert got == [] and transport.closes == [WSCloseCode.PROTOCOL_ERROR]
    assert made.reason is not None and "1002" in made.reason


async def test_a_new_message_inside_a_fragmented_one_is_a_protocol_error() -> None:
    made, got, transport = listener()
    feed(made, transport, frame(WSMsgType.TEXT, b"a", fin=False))
    feed(made, transport, frame(WSMsgType.TEXT, b"b"))
    assert got == [] and transport.closes == [WSCloseCode.PROTOCOL_ERROR]


async def test_the_peers_close_is_answered_and_its_code_and_reason_kept() -> None:
    made, got, transport = listener()
    feed(made, transport, close_frame(4001, b"maintenance"))
    feed(made, transport, frame(WSMsgType.TEXT, b"after close"))
    assert got == []
    assert transport.disconnected and len(transport.closes) == 1
    assert made.reason == "closed by peer (code 4001, maintenance)"


async def test_pings_and_pongs_are_not_data() -> None:
    made, got, transport = listener()
    feed(made, transport, frame(WSMsgType.PING, b"x"))
    feed(made, transport, frame(WSMsgType.PONG, b"x"))
    assert got == [] and not transport.closes
    await asyncio.sleep(0)
