"""`bybit-hybrid sim`: run the embedded Bybit V5 simulator (placeholder until sim lands)."""

from __future__ import annotations

import argparse

HELP = "run the embedded Bybit V5 simulator"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    raise NotImplementedError
