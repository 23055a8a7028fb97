"""`wait_ready()` for every stream: the first snapshot, or a typed error when the key is rejected.

A stream that has never been ready and sees Bybit reject its key (the private socket's auth
reply, or a REST call answered with an auth retCode) will not become ready by waiting: the
waiter gets `KeyRejectedError` at once, naming the retCode, instead of a bare `TimeoutError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import re

from bybit_hybrid.errors import KeyRejectedError
from bybit_hybrid.protocol.hybrid import CoreEvent, Reconciled, RestFailed
from bybit_hybrid.protocol.session import AuthFailed

# The REST client's error text (`transport.errors.BybitApiError`): "... retCode 10003: '...'".
_RET_CODE = re.compile(r"retCode (\d+)")


def key_rejection(event: CoreEvent) -> KeyRejectedError | None:
    """The typed error for an event saying Bybit rejected the key, else None."""
    if isinstance(event, AuthFailed):
        return KeyRejectedError(f"{event.connection} stream auth", None, event.ret_msg)
    if isinstance(event, RestFailed) and event.permanent:
        found = _RET_CODE.search(event.error)
        ret_code = int(found.group(1)) if found else None
        return KeyRejectedError(f"rest {type(event.request).__name__}", ret_code, event.error)
    return None


class Readiness:
    """Fed every core event (`observe`); `wait` returns once ready or raises the rejection.

    The private socket's auth reply carries no retCode, REST's does: when the socket's
    rejection comes first, `wait` gives REST up to `REFINE_S` to say which code it is.
    """

    REFINE_S = 1.0

    def __init__(self) -> None:
        self._ready = asyncio.Event()
        self._settled = asyncio.Event()
        self._coded = asyncio.Event()
        self.error: KeyRejectedError | None = None

    def is_set(self) -> bool:
        return self._ready.is_set()

    def set(self) -> None:
        self._ready.set()
        self._settled.set()

    def clear(self) -> None:
        """A new start: not ready, and no rejection seen yet."""
        self._ready.clear()
        self._settled.clear()
        self._coded.clear()
        self.error = None

    def observe(self, event: CoreEvent) -> None:
        if isinstance(event, Reconciled):
            self.set()
            return
        if self._ready.is_set():
            return
        rejection = key_rejection(event)
        if rejection is None:
            return
        if rejection.ret_code is not None:
            if self.error is None or self.error.ret_code is None:
                self.error = rejection
            self._coded.set()
        elif self.error is None:
            self.error = rejection
        self._settled.set()

    async def wait(self, timeout_s: float) -> None:
        """Ready, or `KeyRejectedError` as soon as a rejection arrives, or `TimeoutError`."""
        await asyncio.wait_for(self._settled.wait(), timeout_s)
        if self._ready.is_set() or self.error is None:
            return
        if self.error.ret_code is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._coded.wait(), self.REFINE_S)
        if not self._ready.is_set() and self.error is not None:
            raise self.error
