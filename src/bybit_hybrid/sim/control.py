"""The /sim/ HTTP control routes: JSON mirrors of ControlPlane's Python control and fault API."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from bybit_hybrid.sim.control_api import AccountControl, MarketControl
from bybit_hybrid.sim.control_body import checked
from bybit_hybrid.sim.numbers import parse_decimal

if TYPE_CHECKING:
    from bybit_hybrid.sim.fault_control import FaultController

Handler = Callable[[dict[str, Any]], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class ControlPlane:
    """Everything the control routes may touch (never the server itself): one account's
    control API by name, the shared market, the fault switches and the state view."""

    account: Callable[[str | None], AccountControl]
    market: MarketControl
    faults: FaultController
    state: Callable[[str | None], dict[str, Any]]
    lag_position_list: Callable[[int], None]
    reorder_position_list: Callable[[int], None]
    blackhole: Callable[[str, bool], int]


def _dec(body: dict[str, Any], name: str) -> Decimal:
    value = parse_decimal(body.get(name))
    if value is None:
        raise ValueError(f"{name} must be a decimal number")
    return value


def _opt_dec(body: dict[str, Any], name: str) -> Decimal | None:
    return None if body.get(name) is None else _dec(body, name)


def _idx(body: dict[str, Any]) -> int:
    return int(body.get("position_idx", 0))


def _account(body: dict[str, Any]) -> str | None:
    name = body.get("account")
    return None if name is None else str(name)


def control_routes(sim: ControlPlane) -> dict[str, tuple[str, Handler]]:
    """Path -> (HTTP method, handler(body) -> JSON-ready result)."""
    routes: dict[str, tuple[str, Handler]] = {}
    routes.update(_position_routes(sim))
    routes.update(_account_routes(sim))
    routes.update(_price_routes(sim))
    routes.update(_fault_routes(sim))
    routes.update(_feed_fault_routes(sim))
    routes.update(_trading_fault_routes(sim))
    routes.update(_failover_routes(sim))
    return {
        path: (method, checked(path, FIELDS[path], handler) if path in FIELDS else handler)
        for path, (method, handler) in routes.items()
    }


# The snake_case fields each route accepts (docs/simulator.md); see `control_body`.
FIELDS: dict[str, tuple[str, ...]] = {
    "/sim/position/open": ("account", "symbol", "side", "qty", "position_idx", "open_time_ms"),
    "/sim/position/close": ("account", "symbol", "position_idx"),
    "/sim/position/change": (
        "account",
        "symbol",
        "position_idx",
        "size",
        "stop_loss",
        "take_profit",
        "trailing_stop",
        "leverage",
        "open_time_ms",
    ),
    "/sim/position/mode": ("account", "symbol", "mode"),
    "/sim/position/touch": ("account", "symbol"),
    "/sim/state": ("account",),
    "/sim/history": ("account", "since"),
    "/sim/mark": ("symbol", "price"),
    "/sim/prices": ("symbol", "mark", "last", "index"),
    "/sim/trend": ("symbol", "ticks_per_step"),
    "/sim/ticks/pause": ("symbol",),
    "/sim/ticks/resume": ("symbol",),
    "/sim/fault/drop": ("target", "abrupt", "account"),
    "/sim/fault/silence": ("target", "account"),
    "/sim/fault/refuse": ("seconds",),
    "/sim/fault/reject_auth": ("count", "seconds"),
    "/sim/fault/delay": ("delay_ms",),
    "/sim/fault/malformed": ("target",),
    "/sim/fault/unknown_topic": ("target", "topic"),
    "/sim/fault/idle_cut": ("idle_s",),
    "/sim/fault/rest_error": ("mode", "count", "path"),
    "/sim/fault/stale_mark": ("symbol", "on"),
    "/sim/fault/mute": ("symbol", "on"),
    "/sim/fault/position_lag": ("ms",),
    "/sim/fault/position_reorder": ("ms",),
    "/sim/fault/blackhole": ("target", "on"),
    "/sim/market/quiet": ("symbol", "on"),
    "/sim/fault/clear": (),
    "/sim/fault": (),
    "/sim/fault/trading": ("path", "mode", "count", "seconds", "symbol", "reset_ms"),
    "/sim/fault/reply_delay": ("path", "ms", "count", "seconds", "symbol"),
    "/sim/fault/partial_fill": ("fraction", "count", "seconds", "symbol"),
    "/sim/fault/hand_stop": ("ticks", "count", "seconds", "symbol"),
}


def _position_routes(sim: ControlPlane) -> dict[str, tuple[str, Handler]]:
    async def open_(body: dict[str, Any]) -> Any:
        open_time = body.get("open_time_ms")
        order_id = await sim.account(_account(body)).open_position(
            str(body["symbol"]),
            str(body["side"]),
            _dec(body, "qty"),
            _idx(body),
            None if open_time is None else int(open_time),
        )
        return {"orderId": order_id}

    async def close(body: dict[str, Any]) -> Any:
        account = sim.account(_account(body))
        return {"orderId": await account.close_position(str(body["symbol"]), _idx(body))}

    async def change(body: dict[str, Any]) -> Any:
        open_time = body.get("open_time_ms")
        await sim.account(_account(body)).change_position(
            str(body["symbol"]),
            _idx(body),
            size=_opt_dec(body, "size"),
            stop_loss=_opt_dec(body, "stop_loss"),
            take_profit=_opt_dec(body, "take_profit"),
            trailing_stop=_opt_dec(body, "trailing_stop"),
            leverage=_opt_dec(body, "leverage"),
            open_time_ms=None if open_time is None else int(open_time),
        )
        return {}

    return {
        "/sim/position/open": ("POST", open_),
        "/sim/position/close": ("POST", close),
        "/sim/position/change": ("POST", change),
    }


def _account_routes(sim: ControlPlane) -> dict[str, tuple[str, Handler]]:
    """Position mode, touch, and the state and history views of one account."""

    async def mode(body: dict[str, Any]) -> Any:
        account = sim.account(_account(body))
        await account.set_position_mode(str(body["symbol"]), str(body["mode"]))
        return {}

    async def touch(body: dict[str, Any]) -> Any:
        await sim.account(_account(body)).touch(str(body["symbol"]))
        return {}

    async def state(body: dict[str, Any]) -> Any:
        return sim.state(_account(body))

    async def history(body: dict[str, Any]) -> Any:
        return sim.account(_account(body)).history(int(body.get("since", 0)))

    return {
        "/sim/position/mode": ("POST", mode),
        "/sim/position/touch": ("POST", touch),
        "/sim/state": ("GET", state),
        "/sim/history": ("GET", history),
    }


def _price_routes(sim: ControlPlane) -> dict[str, tuple[str, Handler]]:
    async def mark(body: dict[str, Any]) -> Any:
        await sim.market.set_mark(str(body["symbol"]), _dec(body, "price"))
        return {}

    async def prices(body: dict[str, Any]) -> Any:
        await sim.market.set_prices(
            str(body["symbol"]),
            mark=_opt_dec(body, "mark"),
            last=_opt_dec(body, "last"),
            index=_opt_dec(body, "index"),
        )
        return {}

    async def trend(body: dict[str, Any]) -> Any:
        sim.market.set_trend(str(body["symbol"]), int(body["ticks_per_step"]))
        return {}

    async def pause(body: dict[str, Any]) -> Any:
        sim.market.pause_ticks(body.get("symbol"))
        return {}

    async def resume(body: dict[str, Any]) -> Any:
        sim.market.resume_ticks(body.get("symbol"))
        return {}

    return {
        "/sim/mark": ("POST", mark),
        "/sim/prices": ("POST", prices),
        "/sim/trend": ("POST", trend),
        "/sim/ticks/pause": ("POST", pause),
        "/sim/ticks/resume": ("POST", resume),
    }


def _fault_routes(sim: ControlPlane) -> dict[str, tuple[str, Handler]]:
    """Socket faults: drops, silence, refusals, auth rejections, delays, bad frames."""
    faults = sim.faults

    async def drop(body: dict[str, Any]) -> Any:
        target, abrupt = body.get("target", "all"), bool(body.get("abrupt"))
        count = await faults.drop(target, abrupt=abrupt, account=_account(body))
        return {"connections": count}

    async def silence(body: dict[str, Any]) -> Any:
        return {"connections": faults.silence(body.get("target", "all"), _account(body))}

    async def refuse(body: dict[str, Any]) -> Any:
        faults.refuse_connections(float(body["seconds"]))
        return {}

    async def reject_auth(body: dict[str, Any]) -> Any:
        faults.reject_auth(count=int(body.get("count", 0)), seconds=float(body.get("seconds", 0)))
        return {}

    async def delay(body: dict[str, Any]) -> Any:
        faults.delay_frames(int(body["delay_ms"]))
        return {}

    async def malformed(body: dict[str, Any]) -> Any:
        return {"connections": faults.send_malformed(body.get("target", "all"))}

    async def unknown_topic(body: dict[str, Any]) -> Any:
        count = faults.send_unknown_topic(body.get("target", "all"), str(body.get("topic", "")))
        return {"connections": count}

    return {
        "/sim/fault/drop": ("POST", drop),
        "/sim/fault/silence": ("POST", silence),
        "/sim/fault/refuse": ("POST", refuse),
        "/sim/fault/reject_auth": ("POST", reject_auth),
        "/sim/fault/delay": ("POST", delay),
        "/sim/fault/malformed": ("POST", malformed),
        "/sim/fault/unknown_topic": ("POST", unknown_topic),
    }


def _feed_fault_routes(sim: ControlPlane) -> dict[str, tuple[str, Handler]]:
    """Idle cuts, REST errors, stale and muted tickers, clearing and listing the faults."""
    faults = sim.faults

    async def idle_cut(body: dict[str, Any]) -> Any:
        return {"connections": faults.cut_idle(float(body["idle_s"]))}

    async def rest_error(body: dict[str, Any]) -> Any:
        faults.rest_errors(str(body["mode"]), int(body.get("count", 1)), body.get("path"))
        return {}

    async def stale_mark(body: dict[str, Any]) -> Any:
        faults.stale_mark(str(body["symbol"]), bool(body.get("on", True)))
        return {}

    async def mute(body: dict[str, Any]) -> Any:
        faults.mute(str(body["symbol"]), bool(body.get("on", True)))
        return {}

    async def clear(body: dict[str, Any]) -> Any:
        faults.clear()
        return {}

    async def show(body: dict[str, Any]) -> Any:
        return faults.to_json()

    return {
        "/sim/fault/idle_cut": ("POST", idle_cut),
        "/sim/fault/rest_error": ("POST", rest_error),
        "/sim/fault/stale_mark": ("POST", stale_mark),
        "/sim/fault/mute": ("POST", mute),
        "/sim/fault/clear": ("POST", clear),
        "/sim/fault": ("GET", show),
    }


def _life(body: dict[str, Any]) -> dict[str, Any]:
    """count / seconds / symbol of a trading fault (at least one of count and seconds)."""
    symbol = body.get("symbol")
    return {
        "count": int(body.get("count", 0)),
        "seconds": float(body.get("seconds", 0)),
        "symbol": None if symbol is None else str(symbol),
    }


def _trading_fault_routes(sim: ControlPlane) -> dict[str, tuple[str, Handler]]:
    faults = sim.faults

    async def failure(body: dict[str, Any]) -> Any:
        faults.trading_failure(
            str(body["path"]),
            str(body["mode"]),
            reset_ms=int(body.get("reset_ms", 1000)),
            **_life(body),
        )
        return {}

    async def reply_delay(body: dict[str, Any]) -> Any:
        faults.reply_delay(str(body["path"]), int(body["ms"]), **_life(body))
        return {}

    async def partial_fill(body: dict[str, Any]) -> Any:
        faults.partial_fill(str(body["fraction"]), **_life(body))
        return {}

    async def hand_stop(body: dict[str, Any]) -> Any:
        faults.hand_stop(int(body["ticks"]), **_life(body))
        return {}

    return {
        "/sim/fault/trading": ("POST", failure),
        "/sim/fault/reply_delay": ("POST", reply_delay),
        "/sim/fault/partial_fill": ("POST", partial_fill),
        "/sim/fault/hand_stop": ("POST", hand_stop),
    }


def _failover_routes(sim: ControlPlane) -> dict[str, tuple[str, Handler]]:
    """Failover faults (`sim/failover_faults.py`) and the quiet market."""

    async def position_lag(body: dict[str, Any]) -> Any:
        sim.lag_position_list(int(body["ms"]))
        return {}

    async def position_reorder(body: dict[str, Any]) -> Any:
        sim.reorder_position_list(int(body["ms"]))
        return {}

    async def blackhole(body: dict[str, Any]) -> Any:
        count = sim.blackhole(body.get("target", "all"), bool(body.get("on", True)))
        return {"connections": count}

    async def quiet(body: dict[str, Any]) -> Any:
        sim.market.set_quiet(str(body["symbol"]), bool(body.get("on", True)))
        return {}

    return {
        "/sim/fault/position_lag": ("POST", position_lag),
        "/sim/fault/position_reorder": ("POST", position_reorder),
        "/sim/fault/blackhole": ("POST", blackhole),
        "/sim/market/quiet": ("POST", quiet),
    }
