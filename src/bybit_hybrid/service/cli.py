"""Command-line entry point: parses the global flags and dispatches to one command module."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from bybit_hybrid import __version__
from bybit_hybrid.errors import ConfigError
from bybit_hybrid.service.commands import COMMANDS
from bybit_hybrid.service.errors import UsageError

__all__ = ["UsageError", "build_parser", "main"]
from bybit_hybrid.service.logs import LOG_FORMATS, configure_logging
from bybit_hybrid.service.output import stdout_to_devnull


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bybit-hybrid",
        description="Live Bybit V5 position stream (WebSocket + REST), with an embedded simulator.",
    )
    parser.add_argument("--version", action="version", version=f"bybit-hybrid {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--log-level",
        default=None,
        help="DEBUG, INFO, WARNING or ERROR (default: $BYBIT_HYBRID_LOG_LEVEL or INFO)",
    )
    common.add_argument("--log-format", choices=LOG_FORMATS, default=None, help="stderr log format")
    common.add_argument(
        "--log-file",
        metavar="PATH",
        default=None,
        help="also log to PATH (mode 0600), rotated at 10 MB, 5 kept "
        "(default: $BYBIT_HYBRID_LOG_FILE, else none)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in COMMANDS.items():
        cmd = sub.add_parser(name, parents=[common], help=module.HELP, description=module.HELP)
        module.add_arguments(cmd)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        configure_logging(args.log_level, args.log_format, args.log_file)
        return COMMANDS[args.command].run(args)
    except (UsageError, ConfigError) as exc:
        print(f"bybit-hybrid: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`replay FILE | head`): it has what it wanted, so no traceback
        # and success, as for `stream`. Later flushes (the interpreter's at exit) must not
        # fail on the dead pipe either.
        stdout_to_devnull()
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
