"""A canary secret must never surface: not in logs (even at DEBUG, before redaction), reprs,
status or stats, metrics, exceptions and their tracebacks, or a recording.

The simulator's API secret is the canary for a working account; a wrong secret (Bybit answers
10004) is the canary for a rejected one.
"""

from __future__ import annotations

import json
import logging
import re
import traceback
from collections.abc import Iterator
from decimal import Decimal

import pytest

from bybit_hybrid import BybitHybridStream
from bybit_hybrid.protocol.hybrid import RestFailed
from bybit_hybrid.protocol.session import AuthFailed
from bybit_hybrid.service.metrics import ServiceMetrics
from bybit_hybrid.service.streams import rollout_stream
from bybit_hybrid.sim import SimServer
from bybit_hybrid.transport.errors import AuthError
from bybit_hybrid.transport.rest import BybitRestClient
from bybit_hybrid.wire.signing import Credentials
from tests.integration.stream_harness import CONFIG, sim_config, start_stream
from tests.support import UNIT_S, wait_for

SIGNATURE = re.compile(r"\b[0-9a-fA-F]{64}\b")
WRONG_SECRET = "CANARYwrongSECRET0123456789abcdef"


class _RawLogs(logging.Handler):
    """Every record at DEBUG, formatted without the CLI's redaction filter."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


@pytest.fixture
def raw_logs() -> Iterator[_RawLogs]:
    handler = _RawLogs()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def _assert_clean(text: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in text
    assert not SIGNATURE.search(text), SIGNATURE.search(text)


async def test_working_account_secret_stays_out_of_everything(raw_logs: _RawLogs) -> None:
    async with SimServer(sim_config()) as sim:
        secret = sim.api_secret
        h = await start_stream(sim)
        try:
            start = len(h.delivered)
            await sim.open_position("SOLUSDT", "Buy", Decimal("0.5"))
            await h.wait_delivered(lambda d: d["symbol"] == "SOLUSDT", start, what="SOL open")
            metrics = ServiceMetrics()
            metrics.bind(stream=h.stream, rest=[h.stream.rest.metrics])
            for _, event in h.core_events:
                metrics.on_event(event)
            surfaces = [
                repr(h.stream),
                str(h.stream),
                repr(h.stream.rest),
                repr(h.stream.core),
                repr(Credentials(sim.api_key, secret)),
                json.dumps(h.stream.get_status(), default=str),
                json.dumps(h.stream.get_stats(), default=str),
                metrics.render().decode(),
                raw_logs.text,
            ]
        finally:
            await h.close()
    assert raw_logs.lines  # the capture works: DEBUG records were seen
    for text in surfaces:
        _assert_clean(text, secret)
    assert sim.api_key not in repr(h.stream)  # masked to its first 4 characters


async def test_rolloutstream_repr_and_status_hold_no_secret() -> None:
    stream = rollout_stream("hybrid", "KEYCANARY123", WRONG_SECRET, base_url="http://127.0.0.1:1")
    for text in (repr(stream), json.dumps(stream.get_status(), default=str)):
        _assert_clean(text, WRONG_SECRET, "KEYCANARY123")


async def test_rejected_secret_10004_stays_out_of_errors_and_logs(raw_logs: _RawLogs) -> None:
    async with SimServer(sim_config()) as sim:
        async with BybitRestClient(sim.base_url, Credentials(sim.api_key, WRONG_SECRET)) as rest:
            with pytest.raises(AuthError) as info:
                await rest.get_positions()
        exc = info.value
        assert "10004" in str(exc)
        shown = "\n".join(
            [str(exc), repr(exc), "".join(traceback.format_exception(exc)), repr(exc.args)]
        )
        _assert_clean(shown, WRONG_SECRET, sim.api_key)

        # The whole stream with the wrong secret: both the REST bootstrap and the private
        # socket's auth are rejected; what it reports and logs holds no secret.
        stream = BybitHybridStream(sim.api_key, WRONG_SECRET, base_url=sim.base_url, config=CONFIG)
        seen: list[object] = []
        stream.add_listener(seen.append)
        await stream.start()
        try:
            await wait_for(
                lambda: (
                    any(isinstance(e, RestFailed) and e.permanent for e in seen)
                    and any(isinstance(e, AuthFailed) for e in seen)
                ),
                5 * UNIT_S,
                "the rejections",
            )
            status = json.dumps(stream.get_status(), default=str)
            events = "\n".join(repr(e) for e in seen)
        finally:
            await stream.stop()
    assert any("rejected" in line or "10004" in line for line in raw_logs.lines)
    for text in (status, events, repr(stream), raw_logs.text):
        _assert_clean(text, WRONG_SECRET)
