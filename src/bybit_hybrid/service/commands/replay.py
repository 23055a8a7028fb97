"""`bybit-hybrid replay FILE`: feed a `stream --record` recording through a fresh core.

Deterministic: the time of every input comes from the recording, no socket is opened and no
clock is read. The position events (opens, changes, closes and mark updates) are printed in
the same contract as `stream` (`--json`: one `position_update` JSON object per line). Marks
are not conflated: a live consumer slower than the feed may have seen fewer of them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bybit_hybrid.errors import ConfigError
from bybit_hybrid.protocol.events import PositionEvent, to_contract
from bybit_hybrid.protocol.hybrid import BadFrame, CoreEvent
from bybit_hybrid.service.render import event_line, position_line
from bybit_hybrid.stream import EXCHANGE, POSITION_UPDATE
from bybit_hybrid.transport.recording import RecordingError, read_records, replay

HELP = "replay a `stream --record` recording through the core and print its position events"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, metavar="FILE", help="a recording (gzip JSON lines)")
    parser.add_argument("--json", action="store_true", help="one JSON event per line on stdout")


def position_events(events: list[CoreEvent]) -> list[PositionEvent]:
    """The events a `stream` consumer is handed, in order."""
    return [e for e in events if isinstance(e, PositionEvent)]


def run(args: argparse.Namespace) -> int:
    if not args.file.is_file():
        raise ConfigError(f"{args.file}: no such recording")
    try:
        result = replay(read_records(args.file))
    except (RecordingError, OSError) as exc:
        raise ConfigError(f"cannot replay {args.file}: {exc}") from None
    for event in position_events(result.events):
        data = to_contract(event.view)
        if args.json:
            line = event_line(POSITION_UPDATE, {"exchange": EXCHANGE, "data": data})
        else:
            line = position_line(data)
        sys.stdout.write(line + "\n")
    sys.stdout.flush()
    bad = sum(isinstance(e, BadFrame) for e in result.events)
    print(
        f"replayed {result.records} records ({len(result.cores)} core run(s)), {bad} bad frame(s)",
        file=sys.stderr,
    )
    return 0
