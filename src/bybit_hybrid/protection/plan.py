"""What protection will do to each open position: the start-up summary and `/status` "plan".

For every position: the trail (activation price, or the stop it keeps) and the aged exit (from
when, at what price, or why none), each marked when only logged (monitor-only, dry run) or held
(past the aged limit when first seen, `aged_close_existing` off). Pure: `now_ms` is passed in.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from bybit_hybrid.protection import aged as aged_core
from bybit_hybrid.protection.aged import AgedPhase, AgedState
from bybit_hybrid.protection.config import AgedConfig, TrailingConfig
from bybit_hybrid.protection.position_manager import ManagedPosition
from bybit_hybrid.protection.prices import moved_by_pct
from bybit_hybrid.protection.trailing import TrailPhase, TrailState


@dataclass(frozen=True, slots=True)
class PlanInputs:
    """One position and what the consumers know about it."""

    position: ManagedPosition
    trail: TrailState | None
    aged: AgedState | None
    aged_held: bool


def position_plan(
    inputs: PlanInputs, trailing: TrailingConfig, aged: AgedConfig, now_ms: int
) -> dict[str, Any]:
    view = inputs.position.view
    key = view.key
    plan: dict[str, Any] = {
        "symbol": key.symbol,
        "position_idx": key.idx,
        "side": None if view.side is None else view.side.value,
        "size": str(view.size),
        "entry_price": None if view.entry_price is None else str(view.entry_price),
        "exchange_stop_loss": None if view.stop_loss is None else str(view.stop_loss),
    }
    plan["trail"] = _trail(inputs, trailing)
    plan["aged"] = _aged(inputs, aged, now_ms)
    return plan


def _trail(inputs: PlanInputs, config: TrailingConfig) -> dict[str, Any]:
    view = inputs.position.view
    symbol = view.key.symbol
    logged_only = config.monitor_only.applies(symbol)
    out: dict[str, Any] = {"sends": not logged_only}
    if view.side is None or not view.entry_price:
        return {**out, "action": "none", "why": "no side or entry price yet"}
    params = config.params_for(symbol)
    trail = inputs.trail
    if trail is not None and trail.phase is TrailPhase.TRAILING:
        return {**out, "action": "trailing", "stop": _text(trail.stop_price)}
    out["action"] = "activates"
    out["activation_price"] = str(moved_by_pct(view.side, view.entry_price, params.activation_pct))
    out["callback_pct"] = str(params.callback_pct)
    if params.breakeven_trigger_pct is not None:
        be = moved_by_pct(view.side, view.entry_price, params.breakeven_trigger_pct)
        out["breakeven_at_price"] = str(be)
    if trail is not None and trail.stop_price is not None:
        out["stop"] = str(trail.stop_price)
    return out


def _aged(inputs: PlanInputs, config: AgedConfig, now_ms: int) -> dict[str, Any]:
    position = inputs.position
    view = position.view
    out: dict[str, Any] = {"sends": not config.monitor_only.applies(view.key.symbol)}
    if inputs.aged_held:
        out["sends"] = False
        reason = "already past the aged limit when first seen; aged_close_existing=false"
        return {**out, "action": "held", "why": reason}
    state = inputs.aged
    if state is not None and state.phase in (AgedPhase.TRAILING, AgedPhase.CLOSED):
        return {**out, "action": "none", "why": f"aged phase {state.phase.value}"}
    if view.side is None or not view.entry_price:
        return {**out, "action": "none", "why": "no side or entry price yet"}
    params = config.params
    opened = position.opened_at_ms
    grace_at = opened + params.max_age_ms
    progressive_at = grace_at + params.grace_ms
    cap_ms = progressive_at + _hours_to_cap_ms(params)
    entry = state.entry_price if state is not None else view.entry_price
    side = view.side

    def price_at(at_ms: int) -> str:  # the core takes an age, not a time
        return _price(aged_core.target_price(params, side, entry, at_ms - opened))

    return {
        **out,
        "action": "exits",
        "from": _iso(grace_at),
        "target_price_now": price_at(max(now_ms, grace_at)),
        "breakeven_price": price_at(grace_at),
        "loss_grows_from": _iso(progressive_at),
        "max_loss_at": _iso(cap_ms),
        "max_loss_price": price_at(cap_ms),
        "age_source": position.age_source.value,
    }


def plan_line(plan: dict[str, Any]) -> str:
    """The plan of one position as one log line."""
    head = f"{plan['symbol']}/{plan['position_idx']} {plan['side']} {plan['size']} @ "
    head += f"{plan['entry_price']} (exchange stop {plan['exchange_stop_loss'] or 'none'})"
    return f"{head}: trail {_trail_text(plan['trail'])}; aged {_aged_text(plan['aged'])}"


def _trail_text(trail: dict[str, Any]) -> str:
    dry = "" if trail["sends"] else " [logged only, nothing sent]"
    if trail["action"] == "trailing":
        return f"active, keeps the stop at {trail['stop']}{dry}"
    if trail["action"] != "activates":
        return f"none ({trail['why']})"
    text = f"activates at {trail['activation_price']}, then {trail['callback_pct']} % behind"
    if "breakeven_at_price" in trail:
        text += f"; stop to break-even at {trail['breakeven_at_price']}"
    return text + dry


def _aged_text(aged: dict[str, Any]) -> str:
    if aged["action"] == "held":
        return f"held, never closed ({aged['why']})"
    if aged["action"] != "exits":
        return f"none ({aged['why']})"
    dry = "" if aged["sends"] else " [logged only, nothing sent]"
    return (
        f"closes at market from {aged['from']} once the mark reaches {aged['target_price_now']} "
        f"(break-even + fees {aged['breakeven_price']}; loss accepted from "
        f"{aged['loss_grows_from']}, up to {aged['max_loss_price']} at {aged['max_loss_at']})"
        f"{dry}"
    )


def _hours_to_cap_ms(params: aged_core.AgedParams) -> int:
    if params.step_pct_per_h <= 0:
        return 0
    return int(params.max_loss_pct / params.step_pct_per_h * aged_core.MS_PER_HOUR)


def _iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms / 1000))


def _price(value: Decimal) -> str:
    return f"{value:.8f}".rstrip("0").rstrip(".")


def _text(value: object) -> str | None:
    return None if value is None else str(value)
