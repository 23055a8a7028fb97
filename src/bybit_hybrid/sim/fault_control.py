"""The Python API of the connection and REST fault switches (`SimServer.faults`)."""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Final

from bybit_hybrid.sim import frames
from bybit_hybrid.sim.connections import SimConnection
from bybit_hybrid.sim.faults import ConnKind, FaultState, RestErrorMode, Target
from bybit_hybrid.sim.trading_shell import TradingFaultsMixin

if TYPE_CHECKING:
    from bybit_hybrid.sim.server import SimServer

_MALFORMED_FRAME: Final = '{"topic":"tickers.BTCUSDT","type":"delta","data":{"symbol":"BTC'


def coerce_target(target: Target | str) -> Target:
    return target if isinstance(target, Target) else Target(target)


class FaultController(TradingFaultsMixin):
    """Python API of the fault switches; each has a `/sim/fault/...` route mirror."""

    def __init__(self, server: SimServer) -> None:
        self._server = server
        self.state = FaultState()

    def _matching(self, target: Target | str, account: str | None = None) -> list[SimConnection]:
        """Open sockets of `target`; with `account`, only private sockets authenticated as it."""
        wanted = coerce_target(target)
        conns = [c for c in self._server.connections if wanted.matches(c.kind)]
        if account is None:
            return conns
        name = self._server.accounts.get(account).name
        return [c for c in conns if c.account == name]

    async def drop(
        self, target: Target | str = Target.ALL, *, abrupt: bool = False, account: str | None = None
    ) -> int:
        """Closes matching sockets (of one account's private ones with `account`): a clean
        close frame, or an abort without one."""
        conns = self._matching(target, account)
        for conn in conns:
            if abrupt:
                conn.abort()
            else:
                await conn.close(1000)
        return len(conns)

    def silence(self, target: Target | str = Target.ALL, account: str | None = None) -> int:
        """Matching open sockets (of one account with `account`) stop answering pings and stop
        pushing (half-dead TCP)."""
        conns = self._matching(target, account)
        for conn in conns:
            conn.silent = True
        return len(conns)

    def refuse_connections(self, seconds: float) -> None:
        """WebSocket upgrades get HTTP 503 for the next `seconds`."""
        self.state.refuse_until_s = time.monotonic() + seconds

    def reject_auth(self, *, count: int = 0, seconds: float = 0.0) -> None:
        """The next `count` auths, and/or all auths for `seconds`, get `Params Error`."""
        self.state.reject_auth_count = count
        self.state.reject_auth_until_s = time.monotonic() + seconds if seconds else 0.0

    def delay_frames(self, delay_ms: int) -> None:
        """Every outgoing frame leaves `delay_ms` after it was queued (0 turns it off)."""
        self.state.delay_ms = max(0, int(delay_ms))

    def send_malformed(self, target: Target | str = Target.ALL) -> int:
        """Sends one truncated JSON frame on matching sockets."""
        conns = self._matching(target)
        for conn in conns:
            conn.push(_MALFORMED_FRAME)
        return len(conns)

    def send_unknown_topic(self, target: Target | str = Target.ALL, topic: str = "") -> int:
        """Sends one well-formed frame whose topic nobody subscribed to."""
        conns = self._matching(target)
        now_ms = self._server.now_ms()
        for conn in conns:
            if conn.kind is ConnKind.PUBLIC:
                name = topic or "publicTrade.SIMUNKNOWN"
                text = frames.encode({"topic": name, "type": "snapshot", "data": [], "ts": now_ms})
            else:
                name = topic or "unknown.topic"
                text = frames.private_push(uuid.uuid4().hex, name, now_ms, [])
            conn.push(text)
        return len(conns)

    def cut_idle(self, idle_s: float) -> int:
        """Like a max_active_time scan now: aborts private sockets idle longer than `idle_s`."""
        conns = [c for c in self._matching(Target.PRIVATE) if c.idle_s() > idle_s]
        for conn in conns:
            conn.abort()
        return len(conns)

    def rest_errors(
        self, mode: RestErrorMode | str, count: int = 1, path: str | None = None
    ) -> None:
        """The next `count` signed REST calls (or calls to `path`) fail with `mode`."""
        self.state.rest_error_mode = (
            mode if isinstance(mode, RestErrorMode) else RestErrorMode(mode)
        )
        self.state.rest_error_count = count
        self.state.rest_error_path = path

    def stale_mark(self, symbol: str, on: bool = True) -> None:
        """Public frames keep the current markPrice of `symbol`; REST keeps showing the real one."""
        self._server.exchange.instrument(symbol)
        if on:
            fields = self._server.exchange.prices.tickers[symbol].fields
            self.state.stale_marks[symbol] = fields["markPrice"]
        else:
            self.state.stale_marks.pop(symbol, None)

    def mute(self, symbol: str, on: bool = True) -> None:
        """No ticker frames at all for `symbol` while other symbols keep flowing."""
        self._server.exchange.instrument(symbol)
        if on:
            self.state.muted.add(symbol)
        else:
            self.state.muted.discard(symbol)

    def clear(self) -> None:
        """Disarms every fault (trading faults too) and un-silences open sockets."""
        self.state.clear()
        self._server.trading_faults.clear()
        self._server.failover_faults.clear()
        for conn in self._server.connections:
            conn.silent = False

    def to_json(self) -> dict[str, object]:
        now_s = time.monotonic()
        return {
            **self.state.to_json(now_s),
            **self._server.failover_faults.to_json(),
            "trading": self.trading.to_json(now_s),
        }
