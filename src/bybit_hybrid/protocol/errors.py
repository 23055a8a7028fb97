"""Errors the protocol core raises when its shell drives it in a way the state machine forbids."""

from __future__ import annotations

from enum import Enum


class ProtocolError(Exception):
    """A shell bug: the core was asked to do something its current state does not allow."""


class IllegalTransition(ProtocolError):  # noqa: N818 - the name the design docs use
    """An event arrived in a state whose transition table has no entry for it."""

    def __init__(self, event: Enum, state: Enum) -> None:
        self.event = event
        self.state = state
        super().__init__(f"cannot handle event {event.value} in state {state.value}")
