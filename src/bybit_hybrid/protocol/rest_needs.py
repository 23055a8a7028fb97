"""The REST calls `HybridCore` wants: queued, in flight, and failed ones waiting to retry.

Requests get increasing ids; a shell takes the queue (`take`), makes the calls and reports
each answer (`answered`) or failure (`failed`). A failure is retried after the back-off's next
delay; any answered positions call resets the back-off. Pure: time is a parameter.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from bybit_hybrid.protocol.backoff import Backoff, BackoffPolicy
from bybit_hybrid.protocol.core_types import RestRequest


class RestNeeds:
    """See the module docstring. `queue` is one list for the object's life (`clear()` empties
    it: a core that must not bootstrap, the bus hub's)."""

    def __init__(self, policy: BackoffPolicy, rng: random.Random) -> None:
        self.queue: list[RestRequest] = []
        self._in_flight: dict[int, RestRequest] = {}
        self._retry: list[tuple[float, RestRequest]] = []
        self._backoff = Backoff(policy, rng)
        self._serial = 0

    def next_id(self) -> int:
        self._serial += 1
        return self._serial

    def want(self, request: RestRequest) -> None:
        self.queue.append(request)

    def take(self) -> list[RestRequest]:
        """Everything queued, now in flight."""
        requests = self.queue[:]
        self.queue.clear()
        for request in requests:
            self._in_flight[request.request_id] = request
        return requests

    def answered(self, request_id: int, *, reset_backoff: bool = False) -> RestRequest | None:
        """The request `request_id` answered (None: not one of ours, or already settled)."""
        if reset_backoff:
            self._backoff.reset()
        return self._in_flight.pop(request_id, None)

    def failed(self, request_id: int, now: float) -> tuple[RestRequest, float] | None:
        """Schedules the retry of a failed request; returns it with the delay (s) until then."""
        request = self._in_flight.pop(request_id, None)
        if request is None:
            return None
        delay_s = self._backoff.next_delay()
        self._retry.append((now + delay_s, request))
        return request, delay_s

    def tick(self, now: float) -> None:
        """Queues again the retries that are due."""
        due = [req for at, req in self._retry if at <= now]
        if due:
            self._retry = [(at, req) for at, req in self._retry if at > now]
            self.queue.extend(due)

    def retry_times(self) -> Iterator[float]:
        return (at for at, _ in self._retry)

    def retries_pending(self) -> int:
        return len(self._retry)

    def pending(self) -> Iterator[RestRequest]:
        """Queued and in-flight requests."""
        yield from self.queue
        yield from self._in_flight.values()
