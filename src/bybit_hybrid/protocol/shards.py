"""Public-socket sharding: ref-counted ticker topics spread over connections, under the limit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

PUBLIC_ARGS_LIMIT_CHARS: Final = 21_000


@dataclass(frozen=True, slots=True)
class OpenConnection:
    """Open a new public connection under this name (its SubscriptionSet starts empty)."""

    name: str


@dataclass(frozen=True, slots=True)
class CloseConnection:
    """This extra public connection holds no topic any more: close it for good."""

    name: str


@dataclass(frozen=True, slots=True)
class AssignTopic:
    connection: str
    topic: str


@dataclass(frozen=True, slots=True)
class UnassignTopic:
    connection: str
    topic: str


ShardAction = OpenConnection | CloseConnection | AssignTopic | UnassignTopic


class PublicShards:
    """Ref-counted public topics spread over connections so each stays under the args limit.

    A topic is wanted while its count is ≥ 1 (e.g. one per open position: hedge mode gives two
    for one ticker). It goes to the lowest-numbered connection with room and stays there while
    wanted, so assignment is stable and deterministic. `{prefix}-1` always exists; extra
    connections are announced by `OpenConnection` and retired by `CloseConnection` when empty.
    The size of a connection is the sum of its topics' lengths, as the limit is worded (§4.3).
    """

    def __init__(
        self, *, prefix: str = "public", max_args_chars: int = PUBLIC_ARGS_LIMIT_CHARS
    ) -> None:
        if max_args_chars < 1:
            raise ValueError(f"max_args_chars must be >= 1, got {max_args_chars}")
        self.prefix = prefix
        self.max_args_chars = max_args_chars
        self._refs: dict[str, int] = {}
        self._home: dict[str, int] = {}  # topic -> shard number
        self._shards: dict[int, dict[str, None]] = {1: {}}
        self._used: dict[int, int] = {1: 0}  # shard number -> sum of its topics' lengths

    @property
    def primary(self) -> str:
        return self._name(1)

    @property
    def connections(self) -> tuple[str, ...]:
        return tuple(self._name(n) for n in sorted(self._shards))

    def refcount(self, topic: str) -> int:
        return self._refs.get(topic, 0)

    def connection_of(self, topic: str) -> str | None:
        number = self._home.get(topic)
        return None if number is None else self._name(number)

    def topics_of(self, connection: str) -> tuple[str, ...]:
        return tuple(self._shards[self._number(connection)])

    def args_chars(self, connection: str) -> int:
        return self._used[self._number(connection)]

    def acquire(self, topic: str) -> list[ShardAction]:
        """One more reason to want `topic`; actions only when it becomes wanted."""
        if len(topic) > self.max_args_chars:
            raise ValueError(f"topic {topic!r} is longer than max_args_chars")
        self._refs[topic] = self._refs.get(topic, 0) + 1
        if self._refs[topic] > 1:
            return []
        actions: list[ShardAction] = []
        number = self._room_for(topic)
        if number not in self._shards:
            self._shards[number] = {}
            self._used[number] = 0
            actions.append(OpenConnection(self._name(number)))
        self._shards[number][topic] = None
        self._used[number] += len(topic)
        self._home[topic] = number
        actions.append(AssignTopic(self._name(number), topic))
        return actions

    def release(self, topic: str) -> list[ShardAction]:
        """One reason fewer; actions only when nothing wants `topic` any more."""
        count = self._refs.get(topic, 0)
        if count == 0:
            raise ValueError(f"topic {topic!r} released more often than acquired")
        if count > 1:
            self._refs[topic] = count - 1
            return []
        del self._refs[topic]
        number = self._home.pop(topic)
        del self._shards[number][topic]
        self._used[number] -= len(topic)
        actions: list[ShardAction] = [UnassignTopic(self._name(number), topic)]
        if number != 1 and not self._shards[number]:
            del self._shards[number]
            del self._used[number]
            actions.append(CloseConnection(self._name(number)))
        return actions

    def _room_for(self, topic: str) -> int:
        """The lowest-numbered shard with room, or the lowest free number for a new one.

        O(shards): each shard's size is kept up to date, never re-summed.
        """
        for number in sorted(self._used):
            if self._used[number] + len(topic) <= self.max_args_chars:
                return number
        return next(n for n in range(2, len(self._shards) + 3) if n not in self._shards)

    def _name(self, number: int) -> str:
        return f"{self.prefix}-{number}"

    def _number(self, connection: str) -> int:
        prefix, _, number = connection.rpartition("-")
        if prefix != self.prefix or not number.isdigit() or int(number) not in self._shards:
            raise KeyError(f"no public connection named {connection!r}")
        return int(number)
