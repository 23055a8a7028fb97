"""`bybit-hybrid stream`: the position stream alone, events on stdout (JSON lines with --json).

`--mode` picks the rollout mode (default: `BYBIT_HYBRID_MODE`, else hybrid); in `parallel`
mode the comparison summary is printed when the run ends (stderr with --json, else stdout).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, get_args

from bybit_hybrid.errors import ConfigError
from bybit_hybrid.service.auth_watch import AuthWatch
from bybit_hybrid.service.commands.bus_flags import add_bus_flags, bus_overrides
from bybit_hybrid.service.commands.endpoint_flags import (
    add_endpoint_flags,
    add_loop_flag,
    endpoint_kwargs,
    endpoint_line,
    positive_seconds,
)
from bybit_hybrid.service.keys import load_keys
from bybit_hybrid.service.loop import run_loop
from bybit_hybrid.service.render import event_line, position_line
from bybit_hybrid.service.settings import AppSettings, Mode, load_settings
from bybit_hybrid.service.streams import check_bus, make_position_stream
from bybit_hybrid.transport.recording import Recorder

log = logging.getLogger(__name__)

HELP = "stream live positions (private + public WebSocket, REST bootstrap) to stdout"
MODES = get_args(Mode)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_endpoint_flags(parser)
    parser.add_argument("--json", action="store_true", help="one JSON event per line on stdout")
    parser.add_argument("--duration", type=positive_seconds, metavar="S", help="stop after S s")
    parser.add_argument(
        "--max-active-time",
        type=int,
        metavar="S",
        help="Bybit's private-socket idle cut, 30..600 s (default: Bybit's ~600 s)",
    )
    parser.add_argument(
        "--mode",
        choices=MODES,
        help="rollout mode (default: $BYBIT_HYBRID_MODE or hybrid); see docs/rollout.md",
    )
    parser.add_argument(
        "--cutover-pct",
        type=float,
        metavar="PCT",
        help="cutover mode: share of symbols (stable hash) on the streams, 0..100",
    )
    parser.add_argument("--config", type=Path, metavar="FILE", help="a TOML settings file")
    parser.add_argument(
        "--record",
        type=Path,
        metavar="FILE",
        help="record every frame and REST answer (gzip JSON lines) for `replay`",
    )
    add_bus_flags(parser, worker=True)
    add_loop_flag(parser)


def run(args: argparse.Namespace) -> int:
    if args.max_active_time is not None and not 30 <= args.max_active_time <= 600:
        raise ConfigError(f"--max-active-time {args.max_active_time} is outside 30..600 s")
    flags = {
        "mode": args.mode,
        "cutover_pct": args.cutover_pct,
        "event_loop": args.loop,
        "ws_backend": args.ws_backend,
    }
    flags.update(bus_overrides(args))
    settings = load_settings(args.config, flags)
    check_bus(settings)
    kwargs = endpoint_kwargs(args, settings)
    api_key, api_secret = load_keys()
    log.info("%s", endpoint_line(kwargs, settings.mode))
    return run_loop(_stream(settings, api_key, api_secret, kwargs, args), settings.event_loop)


class _Printer:
    """Writes one line per event to stdout, flushed, as JSON or as a short human line.

    When the reader goes away (`| head`), it calls `on_closed` once and prints nothing more.
    """

    def __init__(self, as_json: bool, on_closed: Callable[[], None]) -> None:
        self.as_json = as_json
        self._on_closed = on_closed
        self.closed = False

    async def __call__(self, event: str, payload: dict[str, Any]) -> None:
        if self.closed:
            return
        line = event_line(event, payload) if self.as_json else position_line(payload["data"])
        try:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
        except BrokenPipeError:
            self.closed = True
            # Keep the interpreter's final flush from failing on the dead pipe too.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            self._on_closed()


async def _stream(
    settings: AppSettings,
    api_key: str,
    api_secret: str,
    kwargs: dict[str, Any],
    args: argparse.Namespace,
) -> int:
    done = asyncio.Event()
    watch = AuthWatch(settings, done)
    fatal = watch.fatal

    printer = _Printer(args.json, done.set)
    options: dict[str, Any] = (
        {} if settings.mode == "rest" else {"max_active_time_s": args.max_active_time}
    )
    recorder = _recorder(args.record, settings.mode)
    if recorder is not None:
        options["recorder"] = recorder
    stream = make_position_stream(settings, api_key, api_secret, printer, kwargs, **options)
    stream.add_listener(watch)
    watcher = asyncio.create_task(watch.loop(), name="stream-auth-watch")
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, done.set)
    await stream.start()
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), args.duration)
    finally:
        watcher.cancel()
        await stream.stop()
        if recorder is not None:
            recorder.close()
    summary = stream.get_status().get("comparison")
    if settings.mode == "parallel" and isinstance(summary, Mapping) and not printer.closed:
        _print_summary(summary, sys.stderr if args.json else sys.stdout)
    if fatal:
        raise ConfigError(fatal[0])
    return 0


def _recorder(path: Path | None, mode: str) -> Recorder | None:
    if path is None:
        return None
    if mode == "rest":
        raise ConfigError("--record needs the hybrid stream; mode rest has none")
    try:
        return Recorder(path)
    except OSError as exc:
        raise ConfigError(f"--record {path}: {exc.strerror}") from None


def _print_summary(summary: Mapping[str, Any], out: Any) -> None:
    """The parallel run's comparison, one `name: value` line each, under a header."""
    lines = ["parallel comparison summary (hybrid vs rest):"]
    lines += [f"  {name}: {_flat(value)}" for name, value in summary.items()]
    out.write("\n".join(lines) + "\n")
    out.flush()


def _flat(value: Any) -> str:
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={_flat(v)}" for k, v in value.items()) or "-"
    return str(value)
