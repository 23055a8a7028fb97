"""Mailbox: lifecycle never dropped, marks conflated in place, marks never overtake lifecycle."""

from __future__ import annotations

from bybit_hybrid.router.mailbox import Mailbox


def _drain(box: Mailbox[str]) -> list[str]:
    out = []
    while (event := box.get_nowait()) is not None:
        out.append(event)
    return out


def test_marks_conflate_in_place() -> None:
    box: Mailbox[str] = Mailbox()
    box.put_mark("A", "a1")
    box.put_mark("B", "b1")
    box.put_mark("A", "a2")
    assert _drain(box) == ["a2", "b1"]
    assert box.stats.marks_conflated == 1


def test_lifecycle_seals_the_mark_slot() -> None:
    box: Mailbox[str] = Mailbox()
    box.put_mark("A", "a1")
    box.put_lifecycle("A", "close-A")
    box.put_mark("A", "a2")
    assert _drain(box) == ["a1", "close-A", "a2"]


def test_lifecycle_is_never_dropped() -> None:
    box: Mailbox[str] = Mailbox()
    for i in range(1000):
        box.put_lifecycle("A", f"e{i}")
    assert _drain(box) == [f"e{i}" for i in range(1000)]
    assert box.stats.max_backlog == 1000


def test_delivered_mark_slot_is_not_reused() -> None:
    box: Mailbox[str] = Mailbox()
    box.put_mark("A", "a1")
    assert box.get_nowait() == "a1"
    box.put_mark("A", "a2")
    assert _drain(box) == ["a2"]
