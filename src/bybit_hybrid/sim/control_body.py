"""The field names of the /sim/ control routes: snake_case, with Bybit's camelCase as aliases.

One naming (issue 18): every route documents and reads snake_case fields, the names of the
Python control API (`stop_loss`, `ticks_per_step`, `delay_ms`). Bybit's own camelCase
spellings of the same fields (`positionIdx`, `stopLoss`, ...) are accepted too, since bodies are
often copied from Bybit requests. A field a route does not know, one it needs but did not get,
or one given in both spellings is a `ValueError` naming it, checked before anything is done:
a typo must never be ignored silently (the simulator stands in for an exchange).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Final

Handler = Callable[[dict[str, Any]], Awaitable[Any]]

ALIASES: Final = {
    "positionIdx": "position_idx",
    "stopLoss": "stop_loss",
    "takeProfit": "take_profit",
    "trailingStop": "trailing_stop",
    "openTime": "open_time_ms",
}


class Body(dict[str, Any]):
    """A request body in canonical names; a missing field is a ValueError naming it."""

    def __missing__(self, key: str) -> Any:
        raise ValueError(f"missing field {key!r}")


def canonical(path: str, body: dict[str, Any], fields: Iterable[str]) -> Body:
    """`body` with aliases resolved, after checking every field against `fields`."""
    known = set(fields)
    out = Body()
    for key, value in body.items():
        name = ALIASES.get(key, key)
        if name not in known:
            accepted = ", ".join(sorted(known)) or "none"
            raise ValueError(f"unknown field {key!r} for {path} (accepted: {accepted})")
        if name in out:
            raise ValueError(f"field {name!r} given twice (as {name!r} and its alias)")
        out[name] = value
    return out


def checked(path: str, fields: Iterable[str], handler: Handler) -> Handler:
    """`handler` behind the field check of `canonical`."""
    names = tuple(fields)

    async def run(body: dict[str, Any]) -> Any:
        return await handler(canonical(path, body, names))

    return run
