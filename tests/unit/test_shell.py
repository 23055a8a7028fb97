"""`shell`: the parameters and the start/stop/wait_ready every stream shares, written once."""

from __future__ import annotations

import pytest

from bybit_hybrid import BybitHybridStream
from bybit_hybrid.rollout.poller import AdaptiveBybitStream
from bybit_hybrid.shell import ShellStream, StreamParams

SECRET = "SECRETCANARY-0042"


@pytest.mark.parametrize("stream_type", [BybitHybridStream, AdaptiveBybitStream])
@pytest.mark.parametrize("name", ["start", "stop", "wait_ready", "add_listener", "now", "_clock"])
def test_both_streams_run_the_one_lifecycle(stream_type: type[ShellStream], name: str) -> None:
    assert getattr(stream_type, name) is getattr(ShellStream, name)


def test_params_hide_the_secret_and_refuse_an_empty_key() -> None:
    params = StreamParams.of("KEYCANARY-0042", SECRET, testnet=True)
    assert SECRET not in repr(params) and "KEYCANARY-0042" not in repr(params)
    assert params.endpoints.name == "testnet"
    with pytest.raises(ValueError, match="non-empty"):
        StreamParams.of("", SECRET)


def test_a_stream_is_built_from_its_params() -> None:
    stream = AdaptiveBybitStream("KEYCANARY-0042", SECRET, demo=True)
    assert stream.params.endpoints is stream.endpoints
    assert stream.endpoints.name == "demo"
    assert SECRET not in repr(stream)
