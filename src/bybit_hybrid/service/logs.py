"""Logging setup for the CLI: rich console, plain or JSON lines on stderr, with secret redaction."""

from __future__ import annotations

import io
import json
import logging
import logging.handlers
import os
import re
import sys
import time
from typing import Final

from bybit_hybrid.errors import ConfigError

LOG_FORMATS: Final = ("console", "json")
DEFAULT_LOG_FILE_MAX_BYTES: Final = 10_000_000
DEFAULT_LOG_FILE_BACKUPS: Final = 5
LOG_FILE_MODE: Final = 0o600

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


def configure_logging(level: str | None, fmt: str | None, log_file: str | None = None) -> None:
    """Configures the root logger once; library modules never call this.

    `log_file` (or `$BYBIT_HYBRID_LOG_FILE`) adds a size-rotated file, mode 0600, beside stderr:
    `$BYBIT_HYBRID_LOG_FILE_MAX_BYTES` (10 MB) per file, `$BYBIT_HYBRID_LOG_FILE_BACKUPS` (5) kept.
    """
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
        handler.setFormatter(_formatter(fmt_name))
    handlers = [handler]
    path = log_file or os.environ.get("BYBIT_HYBRID_LOG_FILE")
    if path:
        handlers.append(_file_handler(path, fmt_name))
    for each in handlers:
        each.addFilter(REDACTOR)  # on every handler, whatever its format
    root = logging.getLogger()
    for old in root.handlers:
        if old not in handlers:
            old.close()
    root.handlers[:] = handlers
    root.setLevel(level_name)


def _formatter(fmt_name: str) -> logging.Formatter:
    if fmt_name == "json":
        return JsonFormatter()
    formatter = logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    formatter.converter = time.gmtime
    return formatter


class PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A size-rotated log file created 0600 (logs name positions, sizes and stops)."""

    def _open(self) -> io.TextIOWrapper:
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_CREAT | os.O_APPEND, LOG_FILE_MODE)
        return open(fd, "a", encoding=self.encoding, errors=self.errors)


def _file_handler(path: str, fmt_name: str) -> logging.Handler:
    max_bytes = _env_int("BYBIT_HYBRID_LOG_FILE_MAX_BYTES", DEFAULT_LOG_FILE_MAX_BYTES, 1024)
    backups = _env_int("BYBIT_HYBRID_LOG_FILE_BACKUPS", DEFAULT_LOG_FILE_BACKUPS, 0)
    try:
        handler = PrivateRotatingFileHandler(
            path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8"
        )
    except OSError as exc:
        raise ConfigError(f"--log-file {path}: {exc.strerror or exc}") from None
    handler.setFormatter(_formatter(fmt_name))
    return handler


def _env_int(name: str, default: int, minimum: int) -> int:
    text = os.environ.get(name)
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"{name}: got {text!r}, not a whole number") from None
    if value < minimum:
        raise ConfigError(f"{name}: got {value}, must be >= {minimum}")
    return value


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
