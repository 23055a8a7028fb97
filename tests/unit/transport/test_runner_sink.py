"""The runner's frame callback for push backends (`_Sink`), with a fake runner: frames before
the open are held and replayed in order; outputs are carried out per frame; a raising core
closes the socket with a reason instead of escaping into the backend."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

from bybit_hybrid.transport.runner import StreamRunner, _Sink


@dataclass
class FakeCore:
    seen: list[tuple[str, bytes | str]] = field(default_factory=list)
    needs_pump: bool = False
    raise_on: bytes | None = None
    events: list[Any] = field(default_factory=list)

    def on_frame(self, name: str, payload: bytes | str, now: float) -> bool:
        if payload == self.raise_on:
            raise RuntimeError("core bug")
        self.seen.append((name, payload))
        self.events.append(("event", payload))
        return self.needs_pump

    def take_events(self) -> list[Any]:
        taken, self.events = self.events, []
        return taken

    @property
    def pending_events(self) -> list[Any]:
        return self.events


@dataclass
class FakeRunner:
    core: FakeCore = field(default_factory=FakeCore)
    pumps: int = 0
    delivered: list[Any] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    _stopping: bool = False

    def _clock(self) -> float:
        return 1.0

    def _pump(self) -> None:
        self.pumps += 1
        self.delivered += self.core.take_events()

    def _on_events(self, events: list[Any]) -> None:
        self.delivered += events

    def fail_socket(self, name: str, reason: str) -> None:
        self.failed.append((name, reason))


def sink_for(runner: FakeRunner) -> _Sink:
    return _Sink(cast(StreamRunner, runner), "public-1")


def test_frames_before_the_open_are_replayed_in_order_once_live() -> None:
    runner = FakeRunner()
    sink = sink_for(runner)
    sink(b"one")
    sink(b"two")
    assert runner.core.seen == []  # the core has not been told the socket is open
    sink.go_live()
    sink(b"three")
    assert [p for _, p in runner.core.seen] == [b"one", b"two", b"three"]
    assert [e[1] for e in runner.delivered] == [b"one", b"two", b"three"]


def test_a_frame_that_needs_outputs_pumps_and_one_that_does_not_only_delivers() -> None:
    runner = FakeRunner()
    sink = sink_for(runner)
    sink.go_live()
    sink(b"ticker")
    assert runner.pumps == 0 and len(runner.delivered) == 1
    runner.core.needs_pump = True
    sink(b"reply")
    assert runner.pumps == 1 and len(runner.delivered) == 2


def test_a_raising_core_closes_the_socket_with_a_reason_and_stops_feeding() -> None:
    runner = FakeRunner()
    runner.core.raise_on = b"poison"
    sink = sink_for(runner)
    sink.go_live()
    sink(b"poison")  # must not raise into the backend's read callback
    sink(b"after")
    assert runner.failed == [("public-1", "frame handling failed: RuntimeError('core bug')")]
    assert runner.core.seen == []  # nothing fed after the failure (the socket is closing)
    assert sink._early == []  # nor held for later


def test_while_stopping_events_are_not_delivered() -> None:
    runner = FakeRunner(_stopping=True)
    sink = sink_for(runner)
    sink.go_live()
    sink(b"late")
    assert runner.delivered == []
