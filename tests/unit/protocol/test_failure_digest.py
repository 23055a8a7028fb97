"""FailureDigest (issue 18 item 3), judged against its rules: the first failure of a streak at
WARNING, repeats summarised once per window, ERROR once the streak passes the bound, one line
when the connection works again; connections apart."""

from __future__ import annotations

from bybit_hybrid.protocol.failure_digest import ERROR, WARNING, DigestConfig, FailureDigest


def _digest() -> FailureDigest:
    return FailureDigest(DigestConfig(summary_every_s=30, error_after_s=60))


def test_first_failure_warns_and_repeats_are_summarised() -> None:
    d = _digest()
    first = d.failed("private", "connect failed: refused", 0.0)
    assert first is not None and first.level == WARNING and "refused" in first.message
    # Attempts every ~2 s for 29 s: nothing more.
    assert [d.failed("private", "connect failed: refused", t / 2) for t in range(1, 59)] == [
        None
    ] * 58
    summary = d.failed("private", "connect failed: reset", 30.0)
    assert summary is not None and summary.level == WARNING
    assert "60 failed attempts in 30s" in summary.message and "reset" in summary.message


def test_a_streak_past_the_bound_turns_error_and_stays_error() -> None:
    d = _digest()
    d.failed("public-0", "x", 0.0)
    d.failed("public-0", "x", 30.0)  # summary
    escalated = d.failed("public-0", "x", 60.0)
    assert escalated is not None and escalated.level == ERROR and "over 60s" in escalated.message
    assert d.failed("public-0", "x", 61.0) is None
    later = d.failed("public-0", "x", 90.0)
    assert later is not None and later.level == ERROR


def test_success_ends_the_streak_with_one_line_and_the_next_failure_warns_again() -> None:
    d = _digest()
    assert d.succeeded("rest", 0.0) is None  # nothing was failing
    d.failed("rest", "x", 0.0)
    d.failed("rest", "x", 5.0)
    back = d.succeeded("rest", 12.0)
    assert back is not None and "2 failed attempts over 12s" in back.message
    again = d.failed("rest", "y", 13.0)
    assert again is not None and again.level == WARNING


def test_connections_are_apart() -> None:
    d = _digest()
    assert d.failed("private", "x", 0.0) is not None
    assert d.failed("public-0", "x", 1.0) is not None
    assert set(d.failing()) == {"private", "public-0"}
