"""Readiness (issue 18 item 1): ready on the first snapshot; a key rejected before that raises
KeyRejectedError at once, with REST's retCode when REST answers within REFINE_S."""

from __future__ import annotations

import asyncio

import pytest

from bybit_hybrid.errors import KeyRejectedError
from bybit_hybrid.protocol.hybrid import FetchPositions, Reconciled, RestFailed
from bybit_hybrid.protocol.session import AuthFailed
from bybit_hybrid.readiness import Readiness

WS_REJECTED = AuthFailed("private", "Params Error")
REST_REJECTED = RestFailed(
    FetchPositions(1, "bootstrap"),
    "/v5/position/list failed with retCode 10003: 'API key is invalid.'",
    1.0,
    permanent=True,
)


async def test_ready_on_the_first_snapshot() -> None:
    ready = Readiness()
    ready.observe(Reconciled("bootstrap", 0, 0))
    await ready.wait(0.1)
    ready.observe(WS_REJECTED)  # later rejections are not start-up errors
    await ready.wait(0.1)


async def test_a_rest_rejection_raises_with_its_code() -> None:
    ready = Readiness()
    ready.observe(REST_REJECTED)
    with pytest.raises(KeyRejectedError) as caught:
        await ready.wait(5)
    assert caught.value.ret_code == 10003 and "retCode 10003" in str(caught.value)


async def test_a_socket_rejection_first_takes_the_code_rest_gives_soon_after() -> None:
    ready = Readiness()
    ready.observe(WS_REJECTED)
    asyncio.get_running_loop().call_later(0.05, ready.observe, REST_REJECTED)
    with pytest.raises(KeyRejectedError) as caught:
        await ready.wait(5)
    assert caught.value.ret_code == 10003


async def test_a_socket_rejection_alone_raises_without_a_code() -> None:
    ready = Readiness()
    ready.REFINE_S = 0.05
    ready.observe(WS_REJECTED)
    with pytest.raises(KeyRejectedError) as caught:
        await ready.wait(5)
    assert caught.value.ret_code is None and "Params Error" in str(caught.value)


async def test_no_answer_is_a_timeout() -> None:
    with pytest.raises(TimeoutError):
        await Readiness().wait(0.01)
