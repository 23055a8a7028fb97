"""The simulator's accounts: each its own key pair, positions, orders, stops and pushes; one market.

Bybit keeps positions, orders, stops, private pushes and rate limits per UID (per API key), while
market data is the same for everyone. So every account has its own `Exchange` for its trading
state, and all of them share the first account's instruments and price book: a price step moves
every account's marks and may fire any account's TP/SL.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Final

from bybit_hybrid.sim.exchange import Exchange, PrivatePush

MAX_ACCOUNTS: Final = 10_000
_KEY_PREFIX: Final = "SIMDEMOKEY"
_SECRET_PREFIX: Final = "SIMDEMOSECRET"


def account_name(index: int) -> str:
    """The name of the account at 0-based `index`: acct1, acct2, ... (no dots: bus-safe)."""
    return f"acct{index + 1}"


def demo_credentials(index: int) -> tuple[str, str]:
    """The public sim-only key pair of the account at 0-based `index`; index 0 is the
    historical demo pair SIMDEMOKEY000001 / SIMDEMOSECRET...0001."""
    number = index + 1
    return f"{_KEY_PREFIX}{number:06d}", f"{_SECRET_PREFIX}{number:020d}"


@dataclass(frozen=True, slots=True)
class SimAccount:
    """One simulated account (a Bybit UID with one API key); the secret stays out of repr."""

    name: str
    api_key: str
    api_secret: str = field(repr=False)
    exchange: Exchange = field(repr=False)


class Accounts:
    """The accounts of one simulator, in creation order; the first is the default account."""

    def __init__(
        self, keys: Mapping[str, tuple[str, str]], symbols: int, seed: int, now_ms: int
    ) -> None:
        if not keys:
            raise ValueError("the simulator needs at least one account")
        seen: set[str] = set()
        self._by_name: dict[str, SimAccount] = {}
        market: Exchange | None = None
        for salt, (name, (api_key, api_secret)) in enumerate(keys.items()):
            if api_key in seen:
                raise ValueError(f"account {name!r}: api key already used by another account")
            seen.add(api_key)
            exchange = Exchange(symbols, seed, now_ms, market=market, salt=salt)
            market = market or exchange
            self._by_name[name] = SimAccount(name, api_key, api_secret, exchange)
        self._by_key = {acct.api_key: acct for acct in self._by_name.values()}

    @property
    def default(self) -> SimAccount:
        return next(iter(self._by_name.values()))

    @property
    def names(self) -> list[str]:
        return list(self._by_name)

    def __iter__(self) -> Iterator[SimAccount]:
        return iter(self._by_name.values())

    def __len__(self) -> int:
        return len(self._by_name)

    def get(self, name: object = None) -> SimAccount:
        """The named account (None: the default); ValueError naming the known ones."""
        if name is None or name == "":
            return self.default
        acct = self._by_name.get(name) if isinstance(name, str) else None
        if acct is None:
            known = ", ".join(self._by_name)
            raise ValueError(f"unknown account {name!r} (accounts: {known})")
        return acct

    def by_key(self, api_key: str) -> SimAccount | None:
        return self._by_key.get(api_key)

    def step(
        self, now_ms: int, slice_index: int = 0, slices: int = 1
    ) -> dict[str, tuple[str, ...]]:
        """Moves the shared market one tick (one slice), then fires every account's crossed
        TP/SL; returns the changed fields per symbol."""
        changes = self.default.exchange.step(now_ms, slice_index, slices)
        if changes:
            self._check_others(changes, now_ms)
        return changes

    def set_prices(
        self,
        symbol: str,
        now_ms: int,
        *,
        mark: Decimal | None = None,
        last: Decimal | None = None,
        index: Decimal | None = None,
    ) -> tuple[str, ...]:
        """Forces the shared prices of `symbol`; every account's crossed TP/SL fire."""
        changed = self.default.exchange.set_prices(
            symbol, now_ms, mark=mark, last=last, index=index
        )
        if changed:
            self._check_others({symbol: changed}, now_ms)
        return changed

    def drain_pushes(self) -> list[tuple[SimAccount, PrivatePush]]:
        """Every account's queued private pushes, tagged with their account."""
        return [(acct, push) for acct in self for push in acct.exchange.drain_pushes()]

    def _check_others(self, changes: Mapping[str, tuple[str, ...]], now_ms: int) -> None:
        default = self.default
        for acct in self:
            if acct is not default:
                acct.exchange.check_triggers(changes, now_ms)
