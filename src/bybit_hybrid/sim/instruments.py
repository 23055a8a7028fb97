"""Linear-perpetual instrument table of the simulator: known symbols plus generated SYMnnnUSDT."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Final


@dataclass(frozen=True, slots=True)
class Instrument:
    """One tradable contract with Bybit's filters; `base_price` seeds the price walk."""

    symbol: str
    tick_size: Decimal
    qty_step: Decimal
    min_order_qty: Decimal
    max_order_qty: Decimal
    price_scale: int
    settle_coin: str
    base_price: Decimal
    max_leverage: Decimal = Decimal("100")
    status: str = "Trading"

    @property
    def base_coin(self) -> str:
        if self.symbol.endswith("PERP"):
            return self.symbol[: -len("PERP")]
        return self.symbol[: -len(self.settle_coin)]

    @property
    def quote_coin(self) -> str:
        return self.settle_coin

    def on_tick(self, price: Decimal) -> bool:
        return price > 0 and price % self.tick_size == 0

    def on_qty_step(self, qty: Decimal) -> bool:
        return qty > 0 and qty % self.qty_step == 0


def _inst(spec: tuple[str, str, str, str, int, str], settle: str = "USDT") -> Instrument:
    """Builds from (symbol, tickSize, qtyStep=minOrderQty, maxOrderQty, priceScale, price)."""
    symbol, tick, step, max_qty, scale, price = spec
    return Instrument(
        symbol=symbol,
        tick_size=Decimal(tick),
        qty_step=Decimal(step),
        min_order_qty=Decimal(step),
        max_order_qty=Decimal(max_qty),
        price_scale=scale,
        settle_coin=settle,
        base_price=Decimal(price),
    )


# USDC contracts sit early in the list so that even a small sim has two settle coins,
# which is what makes settleCoin pagination (USDT then USDC) matter to a client.
KNOWN_INSTRUMENTS: Final[tuple[Instrument, ...]] = (
    _inst(("BTCUSDT", "0.10", "0.001", "1190", 2, "65000.00")),
    _inst(("ETHUSDT", "0.01", "0.01", "7240", 2, "3200.00")),
    _inst(("SOLUSDT", "0.010", "0.1", "79770", 3, "150.000")),
    _inst(("XRPUSDT", "0.0001", "1", "3340000", 4, "0.6000")),
    _inst(("BTCPERP", "0.5", "0.001", "100", 1, "65000.0"), "USDC"),
    _inst(("DOGEUSDT", "0.00001", "1", "20000000", 5, "0.15000")),
    _inst(("ETHPERP", "0.05", "0.01", "1000", 2, "3200.00"), "USDC"),
    _inst(("BNBUSDT", "0.010", "0.01", "4500", 3, "580.000")),
    _inst(("ADAUSDT", "0.0001", "1", "5000000", 4, "0.4500")),
    _inst(("LINKUSDT", "0.001", "0.1", "200000", 3, "14.000")),
    _inst(("SOLUSDC", "0.010", "0.1", "10000", 3, "150.000"), "USDC"),
    _inst(("AVAXUSDT", "0.001", "0.1", "100000", 3, "28.000")),
)


def generated_instrument(index: int) -> Instrument:
    """A synthetic USDT contract `SYM{index:03d}USDT` with a price between 1 and 100."""
    price = Decimal(1 + (index * 37) % 100).quantize(Decimal("0.0001"))
    return _inst((f"SYM{index:03d}USDT", "0.0001", "0.1", "1000000", 4, str(price)))


def build_instruments(count: int) -> tuple[Instrument, ...]:
    """The first `count` known instruments, topped up with generated ones."""
    if count < 1:
        raise ValueError("symbols must be at least 1")
    known = KNOWN_INSTRUMENTS[:count]
    extra = tuple(generated_instrument(i) for i in range(len(known), count))
    return known + extra
