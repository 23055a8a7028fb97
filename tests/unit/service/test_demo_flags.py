"""`bybit-hybrid demo` flags: a bad value exits 2 with argparse's line naming the flag."""

from __future__ import annotations

import pytest

from bybit_hybrid.service.cli import main


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--duration", "0"], "argument --duration: '0' must be > 0"),
        (["--duration", "soon"], "argument --duration: 'soon' is not a number of seconds"),
        (["--symbols", "2"], "argument --symbols: '2' must be between 3 and 1000"),
        (["--symbols", "x"], "argument --symbols: 'x' is not a whole number"),
    ],
)
def test_demo_bad_flags_exit_2_naming_the_flag(
    flags: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["demo", *flags])
    assert exited.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith(f"error: {message}")
