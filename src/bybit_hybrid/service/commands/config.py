"""`bybit-hybrid config show|docs`: the effective settings (secrets masked), or their reference."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from pydantic.fields import FieldInfo

from bybit_hybrid.service.keys import KeySettings
from bybit_hybrid.service.settings import AppSettings, load_settings, masked
from bybit_hybrid.wire.signing import mask

HELP = "show the effective settings (secrets masked) or print the settings reference"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("show", "docs"), help="show | docs")
    parser.add_argument("--config", type=Path, metavar="FILE", help="a TOML settings file")


def run(args: argparse.Namespace) -> int:
    if args.action == "docs":
        print(reference(), end="")
        return 0
    settings = load_settings(args.config)
    print(json.dumps({**masked(settings), **_keys()}, indent=2, sort_keys=True))
    return 0


def _keys() -> dict[str, str]:
    keys = KeySettings()
    key = keys.api_key.get_secret_value() if keys.api_key else ""
    return {
        "BYBIT_API_KEY": mask(key) if key else "(not set)",
        "BYBIT_API_SECRET": "***" if keys.api_secret else "(not set)",
    }


def reference() -> str:
    """The configuration reference in Markdown, generated from the settings model."""
    lines = [
        "# Configuration reference",
        "",
        "Generated from `AppSettings` by `bybit-hybrid config docs`; a test keeps this file",
        "equal to its output. Precedence: defaults < TOML file (`--config`) < `.env` <",
        "environment < command-line flags. In a TOML file, a name may be written flat",
        "(`trailing_activation_pct = 2.0`) or grouped (`[trailing]` then `activation_pct = 2.0`).",
        "API keys come only from `BYBIT_API_KEY` and `BYBIT_API_SECRET` (environment or `.env`).",
        "Choices (`one of ...`) are case-insensitive in every source (`debug` is `DEBUG`,",
        "`lastprice` is `LastPrice`); `config show` prints the canonical spelling.",
        "",
        "| environment variable | default | allowed | meaning |",
        "|---|---|---|---|",
    ]
    for name, field in AppSettings.model_fields.items():
        env = f"BYBIT_HYBRID_{name.upper()}"
        meaning = field.description or ""
        lines.append(f"| `{env}` | `{_default(field)}` | {_allowed(field)} | {meaning} |")
    return "\n".join(lines) + "\n"


def _default(field: FieldInfo) -> str:
    value: Any = field.get_default(call_default_factory=True)
    return json.dumps(value, default=str) if not isinstance(value, str) else value


def _allowed(field: FieldInfo) -> str:
    if get_origin(field.annotation) is Literal:
        return "one of " + ", ".join(f"`{choice}`" for choice in get_args(field.annotation))
    kind = str(field.annotation).replace("typing.", "").replace("decimal.", "")
    kind = kind.replace("pathlib.Path", "path").replace("<class '", "").replace("'>", "")
    bounds = []
    for rule in field.metadata:
        for attr, symbol in (("gt", ">"), ("ge", "≥"), ("lt", "<"), ("le", "≤")):
            limit = getattr(rule, attr, None)
            if limit is not None:
                bounds.append(f"{symbol} {limit}")
    return kind.replace("|", "or") + (f" ({', '.join(bounds)})" if bounds else "")
