"""Issue 19 F2: a STALE private socket (TCP up, nothing arriving) is not up for the account."""

from __future__ import annotations

import pytest

from bybit_hybrid.protocol.session import SessionState
from bybit_hybrid.rollout import modes


@pytest.mark.parametrize("state", list(SessionState))
def test_only_a_live_or_subscribing_private_socket_serves_the_account(
    state: SessionState,
) -> None:
    # From the rule, not the code: a socket that delivers frames (LIVE) or is confirming its
    # subscriptions right after auth (SUBSCRIBING) serves the account; anything else, STALE
    # included, must let failover move the account to REST polling.
    expected = state in {SessionState.SUBSCRIBING, SessionState.LIVE}
    assert (state in modes.ACCOUNT_FEED_UP) is expected
