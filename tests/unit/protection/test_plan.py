"""The protection plan (issue 18 item 2), checked against the documented rules: the trail
activates at entry moved by activation_pct in the position's favour; the aged exit starts at
open + max_age at break-even plus both fees, the loss is accepted from the end of grace and
reaches max_loss after max_loss / step hours."""

from __future__ import annotations

from decimal import Decimal

from bybit_hybrid.protection.config import aged_config, trailing_config
from bybit_hybrid.protection.plan import PlanInputs, plan_line, position_plan
from bybit_hybrid.protection.position_manager import AgeSource, ManagedPosition
from bybit_hybrid.protocol.domain import PositionKey, Side
from bybit_hybrid.service.settings import load_settings
from tests.unit.protection.fakes import Held, view_of

HOUR_MS = 3_600_000
OPENED_MS = 1_700_000_000_000  # 2023-11-14T22:13:20Z
KEY = PositionKey("BTCUSDT", 0)


def _plan(side: Side, *, held: bool = False, **settings: object) -> dict[str, object]:
    s = load_settings(overrides={"aged_max_age_h": 3, "aged_grace_h": 1, **settings})
    shown = Held(side, Decimal("0.01"), Decimal("100"), None, OPENED_MS)
    position = ManagedPosition(
        view_of(KEY, shown, Decimal("100"), None), OPENED_MS, AgeSource.EXCHANGE
    )
    inputs = PlanInputs(position, None, None, held)
    return position_plan(inputs, trailing_config(s), aged_config(s), OPENED_MS + HOUR_MS)


def test_a_long_plan_follows_the_rules() -> None:
    plan = _plan(Side.BUY)
    trail, aged = plan["trail"], plan["aged"]
    assert isinstance(trail, dict) and isinstance(aged, dict)
    assert Decimal(trail["activation_price"]) == Decimal("102")  # 2 % up
    assert trail["sends"] is True
    assert aged["action"] == "exits"
    assert aged["from"] == "2023-11-15T01:13:20Z"  # opened + 3 h
    assert Decimal(aged["breakeven_price"]) == Decimal("100.1")  # + 2 x 0.05 %
    assert aged["loss_grows_from"] == "2023-11-15T02:13:20Z"  # + 1 h grace
    # 10 % cap at 0.5 %/h: 20 h after grace; the price then is entry x (1 + 0.1 % - 10 %).
    assert aged["max_loss_at"] == "2023-11-15T22:13:20Z"
    assert Decimal(aged["max_loss_price"]) == Decimal("90.1")


def test_a_short_mirrors_it() -> None:
    plan = _plan(Side.SELL)
    assert Decimal(plan["trail"]["activation_price"]) == Decimal("98")  # type: ignore[index]
    assert Decimal(plan["aged"]["breakeven_price"]) == Decimal("99.9")  # type: ignore[index]


def test_held_and_dry_run_are_said() -> None:
    held = _plan(Side.BUY, held=True)
    assert held["aged"] == {
        "sends": False,
        "action": "held",
        "why": "already past the aged limit when first seen; aged_close_existing=false",
    }
    assert "held, never closed" in plan_line(held)
    dry = _plan(Side.BUY, protection_dry_run=True)
    assert dry["trail"]["sends"] is False and dry["aged"]["sends"] is False  # type: ignore[index]
    assert plan_line(dry).count("[logged only, nothing sent]") == 2
