"""Record every input the hybrid core receives, and replay a recording through a fresh core.

A recording is gzip-compressed JSON lines, one record per core input, in the order the shell
fed them. Every record has `k` (kind) and, except the header, `t` (the stream clock the core
was given, epoch seconds):

    {"k": "header", "v": 1, "seed": 123, "config": {...}}      a new core (start or restart)
    {"k": "connect", "t": .., "s": "private"}                  the shell starts a connect
    {"k": "open",    "t": .., "s": "private"}                  a socket opened
    {"k": "frame",   "t": .., "s": "public-1", "p": "<raw>"}   one inbound WS frame, verbatim
    {"k": "frame",   "t": .., "s": .., "b64": "<base64>"}      ... a binary frame
    {"k": "close",   "t": .., "s": .., "reason": ".."}         a socket closed
    {"k": "tick",    "t": ..}                                  a timer deadline fired
    {"k": "positions", "t": .., "id": 3, "requested_at": .., "response_ts_ms": ..,
     "reason": null, "rows": [PositionSnapshot, ...]}          a REST position list answer
    {"k": "tickers", "t": .., "id": 4, "rows": [TickerUpdate, ...]}
    {"k": "rest_failed", "t": .., "id": 5, "error": "..", "permanent": false}
    {"k": "stream_symbol", "symbol": "BTCUSDT", "streams": true}   a cutover decision

Only inbound data is recorded: the frames the core sends (the auth frame and its signature
among them) never are, and the API key and secret plus anything shaped like a signature are
scrubbed from every line before it is written. The file is created with mode 0600.

The tap is `RecordingCore`, a `HybridCore` whose input methods write a record and then do
exactly what the core does; the core itself is untouched. Tapping the core's inputs (rather
than the runner's sockets alone) also catches what the rollout feeds it from outside (a
failover poll's REST answers), so a replay sees every input. The random generator's seed is
recorded, so backoff jitter and request ids come out the same in a replay.

`replay` reads no clock and opens no socket: it calls the same methods with the recorded times
on a fresh core, drains REST requests the way the runner does, and returns the core's events.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import gzip
import inspect
import os
import random
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import msgspec

from bybit_hybrid.protocol.backoff import BackoffPolicy
from bybit_hybrid.protocol.domain import PositionSnapshot, TickerUpdate
from bybit_hybrid.protocol.hybrid import CoreEvent, HybridConfig, HybridCore
from bybit_hybrid.protocol.session import SessionConfig
from bybit_hybrid.protocol.subscriptions import SubscriptionConfig
from bybit_hybrid.wire.signing import Credentials

FORMAT_VERSION: Final = 1
# HMAC-SHA256 signatures are 64 hex characters; masked in free text (error strings).
_HEX_SIG: Final = re.compile(r"\b[0-9a-fA-F]{64}\b")
_MASK: Final = "***"
# Flush the gzip stream this often so a crash loses at most this many records.
_FLUSH_EVERY: Final = 64

_ENCODER: Final = msgspec.json.Encoder(decimal_format="string")


class RecordingError(Exception):
    """A recording file that cannot be read (not gzip, bad JSON, unknown version or kind)."""


class Recorder:
    """Writes records to a gzip JSON-lines file (mode 0600); scrubs the given secrets."""

    def __init__(self, path: str | os.PathLike[str], secrets: Iterable[str] = ()) -> None:
        self.path = Path(path)
        self._secrets = [s for s in secrets if len(s) >= 4]
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        # O_CREAT's mode does not apply to a file that already existed.
        os.fchmod(fd, 0o600)
        self._raw = os.fdopen(fd, "wb")
        self._gzip: gzip.GzipFile | None = gzip.GzipFile(fileobj=self._raw, mode="wb")
        self.records = 0

    def __repr__(self) -> str:
        return f"Recorder(path={str(self.path)!r}, records={self.records})"

    def add_secret(self, secret: str) -> None:
        if len(secret) >= 4:
            self._secrets.append(secret)

    def write(self, record: dict[str, Any]) -> None:
        if self._gzip is None:
            return
        line = _ENCODER.encode(record).decode()
        for secret in self._secrets:
            line = line.replace(secret, _MASK)
        self._gzip.write(line.encode() + b"\n")
        self.records += 1
        if self.records % _FLUSH_EVERY == 0:
            self._gzip.flush()

    def close(self) -> None:
        """Finishes the gzip stream; safe to call twice."""
        if self._gzip is None:
            return
        self._gzip.close()
        self._raw.close()
        self._gzip = None


def _scrub(text: str) -> str:
    return _HEX_SIG.sub("<signature>", text)


def _config_record(config: HybridConfig) -> dict[str, Any]:
    return {
        "session": config.session,
        "subscriptions": config.subscriptions,
        "rest_backoff": config.rest_backoff,
        "max_args_chars": config.max_args_chars,
        "stream_symbol": config.stream_symbol is not None,
    }


class RecordingCore(HybridCore):
    """A `HybridCore` that writes each input to a `Recorder` before handling it: its input
    methods are the core's own, wrapped from the `INPUTS` table below (which replay reads
    back), so no signature is declared twice."""

    def __init__(
        self,
        recorder: Recorder,
        credentials: Credentials,
        config: HybridConfig | None = None,
        seed: int = 0,
    ) -> None:
        config = config or HybridConfig()
        self._recorder = recorder
        recorder.write(
            {"k": "header", "v": FORMAT_VERSION, "seed": seed, "config": _config_record(config)}
        )
        if config.stream_symbol is not None:
            config = dataclasses.replace(
                config, stream_symbol=self._recording_filter(config.stream_symbol)
            )
        super().__init__(credentials, config, random.Random(seed))

    def _recording_filter(self, decide: Callable[[str], bool]) -> Callable[[str], bool]:
        seen: dict[str, bool] = {}

        def stream_symbol(symbol: str) -> bool:
            if symbol not in seen:
                seen[symbol] = decide(symbol)
                self._recorder.write(
                    {"k": "stream_symbol", "symbol": symbol, "streams": seen[symbol]}
                )
            return seen[symbol]

        return stream_symbol


# --- the core's inputs: one table to record them and to replay them --------------------------


@dataclass(frozen=True, slots=True)
class _Field:
    """One argument of a core input and its place in the record (`encode` gives the record's
    items for the value, `decode` reads the value back from a record)."""

    param: str
    key: str
    encode: Callable[[Any], dict[str, Any]] | None = None
    decode: Callable[[dict[str, Any]], Any] | None = None

    def record(self, value: Any) -> dict[str, Any]:
        return {self.key: value} if self.encode is None else self.encode(value)

    def value(self, record: dict[str, Any]) -> Any:
        return record[self.key] if self.decode is None else self.decode(record)


@dataclass(frozen=True, slots=True)
class _Input:
    """A `HybridCore` input method and its record kind; `t` is always its `now`."""

    kind: str
    method: str
    fields: tuple[_Field, ...]

    def record(self, arguments: dict[str, Any]) -> dict[str, Any]:
        record: dict[str, Any] = {"k": self.kind, "t": arguments["now"]}
        for f in self.fields:
            record.update(f.record(arguments[f.param]))
        return record

    def replay(self, core: HybridCore, record: dict[str, Any]) -> None:
        arguments = {f.param: f.value(record) for f in self.fields}
        getattr(core, self.method)(now=record["t"], **arguments)


def _payload_record(payload: bytes | str) -> dict[str, Any]:
    """The picows backend hands text frames over as their UTF-8 bytes: recorded as text
    (readable, and scrubbed of secrets like any text); only real binary as base64."""
    if isinstance(payload, str):
        return {"p": payload}
    try:
        return {"p": payload.decode()}
    except UnicodeDecodeError:
        return {"b64": base64.b64encode(payload).decode()}


def _payload_of(record: dict[str, Any]) -> bytes | str:
    return base64.b64decode(record["b64"]) if "b64" in record else record["p"]


def _scrubbed(key: str) -> Callable[[Any], dict[str, Any]]:
    return lambda text: {key: _scrub(text)}


def _rows(key: str, row_type: type[Any]) -> Callable[[dict[str, Any]], Any]:
    return lambda record: msgspec.convert(record[key], list[row_type])  # type: ignore[valid-type]


_ticker_rows = _rows("rows", TickerUpdate)
_NAME = _Field("name", "s")
_ID = _Field("request_id", "id")
INPUTS: Final = (
    _Input("connect", "start_connect", (_NAME,)),
    _Input("open", "on_open", (_NAME,)),
    _Input("close", "on_close", (_NAME, _Field("reason", "reason", _scrubbed("reason")))),
    _Input("frame", "on_frame", (_NAME, _Field("payload", "p", _payload_record, _payload_of))),
    _Input("tick", "tick", ()),
    _Input(
        "positions",
        "on_positions",
        (
            _ID,
            _Field("requested_at", "requested_at"),
            _Field("response_ts_ms", "response_ts_ms"),
            _Field("reason", "reason"),
            _Field("snapshots", "rows", decode=_rows("rows", PositionSnapshot)),
        ),
    ),
    _Input(
        "tickers",
        "on_tickers",
        (_ID, _Field("updates", "rows", decode=_rows("rows", TickerUpdate))),
    ),
    _Input(
        "rest_failed",
        "on_rest_failed",
        (_ID, _Field("error", "error", _scrubbed("error")), _Field("permanent", "permanent")),
    ),
)
_BY_KIND: Final = {spec.kind: spec for spec in INPUTS}


def _recorded(spec: _Input) -> Callable[..., Any]:
    """`HybridCore`'s method for `spec`, writing its record first."""
    original = getattr(HybridCore, spec.method)
    signature = inspect.signature(original)

    @functools.wraps(original)
    def method(self: RecordingCore, *args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        self._recorder.write(spec.record(bound.arguments))
        return original(self, *args, **kwargs)

    return method


for _spec in INPUTS:
    setattr(RecordingCore, _spec.method, _recorded(_spec))


# --- replay ---------------------------------------------------------------------------------


@dataclass
class ReplayResult:
    """What a replay produced: every core event in order, and the cores it built."""

    events: list[CoreEvent] = dataclasses.field(default_factory=list)
    records: int = 0
    cores: list[HybridCore] = dataclasses.field(default_factory=list)


def read_records(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """The records of a recording, in order; a truncated tail (a crash) ends the iteration."""
    try:
        with gzip.open(path, "rb") as f:
            for number, line in enumerate(_lines(f), 1):
                try:
                    record = msgspec.json.decode(line)
                except msgspec.DecodeError as exc:
                    raise RecordingError(f"{path}: line {number}: {exc}") from None
                if not isinstance(record, dict) or "k" not in record:
                    raise RecordingError(f"{path}: line {number}: not a record")
                yield record
    except gzip.BadGzipFile as exc:
        raise RecordingError(f"{path}: {exc}") from None


def _lines(f: gzip.GzipFile) -> Iterator[bytes]:
    try:
        for line in f:
            if line.endswith(b"\n"):
                yield line
    except EOFError:  # the writer died before closing the gzip stream
        return


def _config_from(record: dict[str, Any], answers: dict[str, bool]) -> HybridConfig:
    c = record.get("config") or {}
    try:
        config = HybridConfig(
            session=msgspec.convert(_session_record(c["session"]), SessionConfig),
            subscriptions=msgspec.convert(c["subscriptions"], SubscriptionConfig),
            rest_backoff=msgspec.convert(c["rest_backoff"], BackoffPolicy),
            max_args_chars=int(c["max_args_chars"]),
        )
    except (KeyError, TypeError, ValueError, msgspec.ValidationError) as exc:
        raise RecordingError(f"header has a bad config: {exc}") from None
    if c.get("stream_symbol"):
        # The recorded cutover decisions; a symbol decided later in the file is looked up
        # when the core asks, by which time its record has been read (recorded before use).
        config = dataclasses.replace(config, stream_symbol=lambda s: answers.get(s, True))
    return config


def _session_record(session: dict[str, Any]) -> dict[str, Any]:
    """A recording made before the private socket had its own heartbeat (issue 19 F2) ran it
    on the public ping and pong: replay it so, or its pings and pong deadlines would differ."""
    if not isinstance(session, dict) or "private_ping_interval_s" in session:
        return session
    return {
        **session,
        "private_ping_interval_s": session.get("ping_interval_s", 20.0),
        "private_pong_timeout_s": session.get("pong_timeout_s", 10.0),
    }


def replay(records: Iterable[dict[str, Any]]) -> ReplayResult:
    """Feeds `records` through fresh cores (one per header); reads no clock, opens no socket."""
    result = ReplayResult()
    core: HybridCore | None = None
    answers: dict[str, bool] = {}
    for record in records:
        result.records += 1
        kind = record["k"]
        if kind == "header":
            if record.get("v") != FORMAT_VERSION:
                raise RecordingError(f"unsupported recording version {record.get('v')!r}")
            answers = {}
            core = HybridCore(
                Credentials("replay", "replay"),
                _config_from(record, answers),
                random.Random(record.get("seed", 0)),
            )
            result.cores.append(core)
        elif kind == "stream_symbol":
            answers[record["symbol"]] = bool(record["streams"])
            continue
        elif core is None:
            raise RecordingError(f"record {result.records} ({kind!r}) precedes any header")
        else:
            _feed(core, kind, record)
        # What the runner's pump does after each input: hand out REST requests (they become
        # in flight, so their answers match) and collect the events.
        core.take_rest_requests()
        for name in core.sockets():
            core.take_outbox(name)
        result.events.extend(core.take_events())
    return result


def _feed(core: HybridCore, kind: str, r: dict[str, Any]) -> None:
    spec = _BY_KIND.get(kind)
    if spec is None:
        raise RecordingError(f"unknown record kind {kind!r}")
    try:
        spec.replay(core, r)
    except (KeyError, TypeError, msgspec.ValidationError) as exc:
        raise RecordingError(f"bad {kind!r} record: {exc!r}") from None
