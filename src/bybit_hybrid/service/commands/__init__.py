"""Registry of CLI commands: each module exposes HELP, add_arguments(parser) and run(args)."""

from __future__ import annotations

import argparse
from types import ModuleType
from typing import Protocol, cast

from bybit_hybrid.service.commands import config, demo, hub, replay, run, sim, stream


class Command(Protocol):
    HELP: str

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


def _as_command(module: ModuleType) -> Command:
    return cast(Command, module)


COMMANDS: dict[str, Command] = {
    "config": _as_command(config),
    "demo": _as_command(demo),
    "hub": _as_command(hub),
    "replay": _as_command(replay),
    "run": _as_command(run),
    "sim": _as_command(sim),
    "stream": _as_command(stream),
}
