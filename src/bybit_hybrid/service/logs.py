"""Logging setup for the CLI: rich console, plain or JSON lines on stderr, with secret redaction."""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from typing import Final

from bybit_hybrid.errors import ConfigError

LOG_FORMATS: Final = ("console", "json")

# Anything that looks like a signature or an api secret is masked even if a caller forgot.
_HEX_SIG = re.compile(r"\b[0-9a-f]{64}\b")


class RedactingFilter(logging.Filter):
    """Masks registered secrets and 64-hex-char signatures in every record's final message."""

    def __init__(self) -> None:
        super().__init__()
        self._secrets: set[str] = set()

    def add_secret(self, secret: str) -> None:
        if len(secret) >= 4:
            self._secrets.add(secret)

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return _HEX_SIG.sub("<signature>", text)

    def filter(self, record: logging.LogRecord) -> bool:
        message = self.redact(record.getMessage())
        record.msg = message
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = self.redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


REDACTOR: Final = RedactingFilter()


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg (+ exc, + structured `event_fields`).

    Library code attaches machine-readable fields with `extra={"event_fields": {...}}` (the
    rollout's alerts, failover switches and divergences); they become top-level keys.
    """

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, object] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "event_fields", None)
        if isinstance(fields, dict):
            payload.update({k: v for k, v in fields.items() if k not in payload})
        if record.exc_text:
            payload["exc"] = record.exc_text
        return json.dumps(payload, ensure_ascii=False)


def configure_logging(level: str | None, fmt: str | None) -> None:
    """Configures the root logger once; library modules never call this."""
    level_name = (level or os.environ.get("BYBIT_HYBRID_LOG_LEVEL") or "INFO").upper()
    if level_name not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ConfigError(
            f"log level {level_name!r} is not one of DEBUG, INFO, WARNING, ERROR, CRITICAL"
        )
    fmt_name = fmt or os.environ.get("BYBIT_HYBRID_LOG_FORMAT") or "console"
    if fmt_name not in LOG_FORMATS:
        raise ConfigError(f"log format {fmt_name!r} is not one of console, json")
    handler: logging.Handler
    if fmt_name == "console" and sys.stderr.isatty():
        handler = _rich_handler()
    else:
        handler = logging.StreamHandler(sys.stderr)
        if fmt_name == "json":
            handler.setFormatter(JsonFormatter())
        else:
            formatter = logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
            formatter.converter = time.gmtime
            handler.setFormatter(formatter)
    handler.addFilter(REDACTOR)  # on every handler, whatever its format
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level_name)


def _rich_handler() -> logging.Handler:
    """Coloured console logs for a terminal (stderr); markup off so messages print verbatim."""
    from rich.console import Console  # noqa: PLC0415  # only a terminal needs rich's import
    from rich.logging import RichHandler  # noqa: PLC0415

    handler = RichHandler(
        console=Console(stderr=True),
        show_path=False,
        markup=False,
        rich_tracebacks=False,
        log_time_format="%H:%M:%S",
    )
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    return handler
