"""Errors the protocol core raises when its shell drives it in a way the state machine forbids."""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import TypeVar

S = TypeVar("S", bound=Enum)
T = TypeVar("T", bound=Enum)


class ProtocolError(Exception):
    """A shell bug: the core was asked to do something its current state does not allow."""


class IllegalTransition(ProtocolError):  # noqa: N818 - the name the design docs use
    """An event arrived in a state whose transition table has no entry for it."""

    def __init__(self, event: Enum, state: Enum) -> None:
        self.event = event
        self.state = state
        super().__init__(f"cannot handle event {event.value} in state {state.value}")


def next_state(table: Mapping[tuple[S, T], S], state: S, trigger: T) -> S:
    """The one transition lookup every state machine uses; a pair missing from `table` raises
    `IllegalTransition` naming the trigger and the state."""
    try:
        return table[(state, trigger)]
    except KeyError:
        raise IllegalTransition(trigger, state) from None


def check_edge(table: Mapping[S, frozenset[S]], state: S, new: S) -> S:
    """For machines whose table lists the states reachable from each state (protection's
    phases): `new` if the edge exists (staying put always does), else `IllegalTransition`."""
    if new is not state and new not in table[state]:
        raise IllegalTransition(new, state)
    return new
