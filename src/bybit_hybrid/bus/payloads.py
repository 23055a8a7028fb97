"""The bus's payload schemas (msgspec, JSON, decimals as strings): the contract of docs/bus.md."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Final

import msgspec


class BusMark(msgspec.Struct, frozen=True, forbid_unknown_fields=False):
    """One mark change of one symbol, as a hub merged it from `tickers.{symbol}`."""

    symbol: str
    mark_price: Decimal
    ts_ms: int  # Bybit's frame timestamp
    cs: int | None  # Bybit's cross sequence of that frame
    hub: str  # which hub published it (the copies of hot-hot hubs are dropped by msg id)
    # When the hub received the frame (its wall clock, µs): a consumer on the same clock
    # (or a synced one) measures the hop the bus adds. None from hubs before this field.
    rx_us: int | None = None


class Demand(msgspec.Struct, frozen=True):
    """One account worker's wanted symbols, the value of its key in `bybit_demand`."""

    account: str
    symbols: list[str]
    updated_ms: int


class HubBeat(msgspec.Struct, frozen=True):
    hub: str
    symbols: int  # how many tickers it serves
    sent_ms: int
    # The symbols whose tickers it heard within its staleness bound: alive, however quiet.
    live: list[str] = []


class PositionMessage(msgspec.Struct, frozen=True):
    """One position event of one account: the DESIGN §4 `position_update`, plus the account
    and the event kind (opened, changed, closed)."""

    account: str
    event: str
    exchange: str
    data: dict[str, Any]


ENCODER: Final = msgspec.json.Encoder(decimal_format="string")


def encode(payload: msgspec.Struct) -> bytes:
    return ENCODER.encode(payload)


_MARK_DECODER: Final = msgspec.json.Decoder(BusMark)


def decode_mark(raw: bytes) -> BusMark:
    """Raises `msgspec.ValidationError` / `DecodeError` naming the bad field."""
    return _MARK_DECODER.decode(raw)


def decode_beat(raw: bytes) -> HubBeat:
    return msgspec.json.decode(raw, type=HubBeat)


def decode_demand(raw: bytes) -> Demand:
    return msgspec.json.decode(raw, type=Demand)


def decode_position(raw: bytes) -> PositionMessage:
    return msgspec.json.decode(raw, type=PositionMessage)
