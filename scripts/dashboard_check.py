"""Runs `bybit-hybrid demo` in a pseudo-terminal of each size and checks what the screen shows.

    .venv/bin/python scripts/dashboard_check.py [--duration 12] [--sizes 80x24,120x40,160x48]

The demo's output is fed into a terminal emulator (pyte, a dev dependency) while it runs, the
way tmux or xterm would draw it; the screen is read just before the demo ends. Checks per
size: exactly one header line (no stale copies), the simulator's address and the protection
line on screen, the priority columns present and no position cell cut short. Prints each final
screen and exits 1 if any check fails. Not part of the test suite (it takes seconds per size);
tests/unit/service/test_dashboard_sizes.py covers the same ground with fixed snapshots.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import pty
import select
import struct
import sys
import termios
import time

import pyte

HEADER = "bybit-hybrid demo"
CORE_HEADERS = ("Symbol", "Side", "Size", "Mark", "Stop")


def run_in_pty(width: int, height: int, duration_s: float) -> list[str]:
    """The screen a `width` x `height` terminal shows 1 s before the demo's end."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: the demo on the pty
        os.execvp(
            sys.executable,
            [sys.executable, "-m", "bybit_hybrid", "demo", "--duration", str(duration_s)],
        )
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))
    screen = pyte.Screen(width, height)
    stream = pyte.ByteStream(screen)
    snapshot: list[str] = []
    deadline = time.monotonic() + duration_s + 30
    look_at = time.monotonic() + duration_s - 1
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                data = os.read(fd, 65536)
            except OSError:
                break  # the child closed the pty
            if not data:
                break
            stream.feed(data)
        if not snapshot and time.monotonic() >= look_at:
            snapshot = [line.rstrip() for line in screen.display]
    os.waitpid(pid, 0)
    return snapshot


def problems(lines: list[str], width: int) -> list[str]:
    found = []
    headers = sum(line.startswith(HEADER) for line in lines)
    if headers != 1:
        found.append(f"{headers} header lines (want exactly 1)")
    if not any("sim http://127.0.0.1:" in line for line in lines):
        found.append("the simulator's address is not on screen")
    if not any(line.startswith("protection:") for line in lines):
        found.append("no protection line")
    table = next((i for i, line in enumerate(lines) if line.startswith("Symbol")), None)
    if table is None:
        found.append("no positions table")
        return found
    missing = [h for h in CORE_HEADERS if h not in lines[table].split()]
    if missing:
        found.append(f"priority columns missing: {missing}")
    for line in lines[table + 2 :]:
        if line.startswith(("Protection actions", "+")):
            break
        if "…" in line:
            found.append(f"a position cell is cut short: {line!r}")
    if any(len(line) > width for line in lines):
        found.append("a line is wider than the terminal")
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=12.0)
    parser.add_argument("--sizes", default="80x24,120x40,160x48")
    args = parser.parse_args()
    failed = False
    for size in args.sizes.split(","):
        width, height = (int(part) for part in size.split("x"))
        lines = run_in_pty(width, height, args.duration)
        print(f"===== {width}x{height} =====")
        print("\n".join(lines))
        found = problems(lines, width)
        for problem in found:
            print(f"FAIL {width}x{height}: {problem}")
        failed = failed or bool(found)
    print("dashboard check:", "FAILED" if failed else "ok")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
