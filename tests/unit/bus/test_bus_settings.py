"""Bus settings, subjects and payloads: validation with clear errors, secrets masked."""

from __future__ import annotations

from decimal import Decimal

import msgspec
import pytest

from bybit_hybrid.bus.payloads import BusMark, decode_mark, encode
from bybit_hybrid.bus.settings import BusSettings
from bybit_hybrid.bus.subjects import (
    check_account,
    mark_msg_id,
    mark_subject,
    position_msg_id,
    positions_subject,
)


def test_a_password_in_the_url_is_masked_in_repr_and_masked() -> None:
    bus = BusSettings("nats://alice:s3cret@10.0.0.1:4222,tls://h2:4222", token="tok3n")
    assert "s3cret" not in repr(bus) and "tok3n" not in repr(bus)
    assert bus.masked() == "nats://***@10.0.0.1:4222,tls://h2:4222"
    assert bus.servers() == ["nats://alice:s3cret@10.0.0.1:4222", "tls://h2:4222"]
    assert bus.connect_options()["token"] == "tok3n"  # given to nats-py only


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"url": "http://h:4222"}, "scheme must be nats://"),
        ({"url": " , "}, "bus url is empty"),
        ({"url": "nats://h:1", "heartbeat_s": 20.0}, "at least 3x heartbeat_s"),
        ({"url": "nats://h:1", "stale_after_s": 0.5}, "must exceed heartbeat_s"),
        ({"url": "nats://h:1", "replicas": 7}, "replicas must be 1..5"),
    ],
)
def test_bad_settings_name_the_offending_value(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BusSettings(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["a.b", "a*", ">", "", "x" * 65, "main account"])
def test_an_account_name_that_would_break_a_subject_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="account name"):
        check_account(name)


def test_subjects_and_ids() -> None:
    assert mark_subject("BTCUSDT") == "bybit.marks.BTCUSDT"
    assert positions_subject("main-1") == "bybit.positions.main-1"
    with pytest.raises(ValueError, match="symbol"):
        mark_subject("btc.usdt")
    # Same cs, different frames (the index moved the mark): different ids.
    assert mark_msg_id("BTCUSDT", 7, 1000) != mark_msg_id("BTCUSDT", 7, 1100)
    assert mark_msg_id("BTCUSDT", None, 1000) == "BTCUSDT:-:1000"
    assert position_msg_id("a", "BTCUSDT", 0, "opened", 5) == "a:BTCUSDT:0:opened:5"


def test_a_mark_round_trips_with_its_decimal_as_a_string() -> None:
    mark = BusMark("BTCUSDT", Decimal("65012.30"), 1, 2, "hub")
    raw = encode(mark)
    assert b'"mark_price":"65012.30"' in raw
    assert decode_mark(raw) == mark
    with pytest.raises(msgspec.ValidationError, match="mark_price"):
        decode_mark(b'{"symbol":"BTCUSDT","mark_price":"x","ts_ms":1,"cs":2,"hub":"h"}')


def test_replicas_reach_every_stream_and_the_bucket_and_are_bounded() -> None:
    from bybit_hybrid.bus.setup import marks_config, positions_config  # noqa: PLC0415

    bus = BusSettings("nats://h1:4222,nats://h2:4222,nats://h3:4222", replicas=3)
    assert marks_config(bus).num_replicas == 3
    assert positions_config(bus).num_replicas == 3
    with pytest.raises(ValueError, match=r"replicas must be 1\.\.5"):
        BusSettings("nats://h:1", replicas=0)
