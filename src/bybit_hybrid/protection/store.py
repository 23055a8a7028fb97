"""SQLite persistence of trailing and aged state, so a restart resumes every trail as it was.

Writes are tiny single-row upserts in WAL mode with `synchronous=NORMAL` (durable across a
process crash, no fsync per commit), so they run inline on the event loop: a thread hop would
cost more than the write and could reorder two writes of one key. Prices are stored as text so
Decimals round-trip exactly. A trail's `stop_price` column is the stop it *wants*: what the
exchange holds is never stored, because only the exchange can confirm it after a restart.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path
from typing import Final

from bybit_hybrid.protection.aged import AgedPhase, AgedState
from bybit_hybrid.protection.trailing import TrailPhase, TrailState
from bybit_hybrid.protocol.domain import PositionKey, Side

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS trails (
    symbol TEXT NOT NULL,
    idx INTEGER NOT NULL,
    side TEXT NOT NULL,
    entry_price TEXT NOT NULL,
    tick_size TEXT NOT NULL,
    extreme_price TEXT NOT NULL,
    phase TEXT NOT NULL,
    stop_price TEXT,
    last_sent_at_s REAL,
    opened_at_ms INTEGER,
    PRIMARY KEY (symbol, idx)
);
CREATE TABLE IF NOT EXISTS aged (
    symbol TEXT NOT NULL,
    idx INTEGER NOT NULL,
    side TEXT NOT NULL,
    entry_price TEXT NOT NULL,
    opened_at_ms INTEGER NOT NULL,
    phase TEXT NOT NULL,
    PRIMARY KEY (symbol, idx)
);
CREATE TABLE IF NOT EXISTS aged_held (
    symbol TEXT NOT NULL,
    idx INTEGER NOT NULL,
    PRIMARY KEY (symbol, idx)
);
"""


class ProtectionStore:
    """Trail and aged rows keyed by (symbol, positionIdx); `":memory:"` for a throwaway store."""

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._migrate()
        self.writes = 0

    def close(self) -> None:
        self._db.close()

    def _migrate(self) -> None:
        """Files from before trails carried their position's openTime get the column (NULL)."""
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(trails)")}
        if "opened_at_ms" not in columns:
            self._db.execute("ALTER TABLE trails ADD COLUMN opened_at_ms INTEGER")

    # --- trails ----------------------------------------------------------------------------

    def save_trail(self, key: PositionKey, state: TrailState) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO trails (symbol, idx, side, entry_price, tick_size,"
            " extreme_price, phase, stop_price, last_sent_at_s, opened_at_ms)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                key.symbol,
                key.idx,
                state.side.value,
                str(state.entry_price),
                str(state.tick_size),
                str(state.extreme_price),
                state.phase.value,
                None if state.wanted_stop is None else str(state.wanted_stop),
                None,  # monotonic: meaningless in another process
                state.opened_at_ms,
            ),
        )
        self.writes += 1

    def delete_trail(self, key: PositionKey) -> None:
        self._db.execute("DELETE FROM trails WHERE symbol = ? AND idx = ?", (key.symbol, key.idx))
        self.writes += 1

    def load_trails(self) -> dict[PositionKey, TrailState]:
        rows = self._db.execute(
            "SELECT symbol, idx, side, entry_price, tick_size, extreme_price, phase, stop_price,"
            " opened_at_ms FROM trails"
        ).fetchall()
        return {PositionKey(row[0], row[1]): _trail_from_row(row) for row in rows}

    # --- aged ------------------------------------------------------------------------------

    def save_aged(self, key: PositionKey, state: AgedState) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO aged VALUES (?, ?, ?, ?, ?, ?)",
            (
                key.symbol,
                key.idx,
                state.side.value,
                str(state.entry_price),
                state.opened_at_ms,
                state.phase.value,
            ),
        )
        self.writes += 1

    def delete_aged(self, key: PositionKey) -> None:
        self._db.execute("DELETE FROM aged WHERE symbol = ? AND idx = ?", (key.symbol, key.idx))
        self._db.execute(
            "DELETE FROM aged_held WHERE symbol = ? AND idx = ?", (key.symbol, key.idx)
        )
        self.writes += 1

    def hold_aged(self, key: PositionKey) -> None:
        """Marks a position the aged monitor only watches (past the limit when first seen)."""
        self._db.execute("INSERT OR REPLACE INTO aged_held VALUES (?, ?)", (key.symbol, key.idx))
        self.writes += 1

    def release_aged(self, key: PositionKey) -> None:
        self._db.execute(
            "DELETE FROM aged_held WHERE symbol = ? AND idx = ?", (key.symbol, key.idx)
        )
        self.writes += 1

    def load_aged_held(self) -> set[PositionKey]:
        rows = self._db.execute("SELECT symbol, idx FROM aged_held").fetchall()
        return {PositionKey(str(symbol), int(idx)) for symbol, idx in rows}

    def load_aged(self) -> dict[PositionKey, AgedState]:
        rows = self._db.execute("SELECT * FROM aged").fetchall()
        return {
            PositionKey(row[0], row[1]): AgedState(
                Side(row[2]), Decimal(row[3]), int(row[4]), AgedPhase(row[5])
            )
            for row in rows
        }

    # --- housekeeping ----------------------------------------------------------------------

    def drop_missing(self, open_keys: Iterable[PositionKey]) -> list[PositionKey]:
        """Deletes every row whose position is not open any more; returns the dropped keys."""
        keep = set(open_keys)
        stored = set(self.load_trails()) | set(self.load_aged())
        gone = sorted(stored - keep)
        for key in gone:
            self.delete_trail(key)
            self.delete_aged(key)
        return gone


def _trail_from_row(row: tuple[object, ...]) -> TrailState:
    """A stored trail: its wanted stop, unconfirmed (the exchange has the last word)."""
    stop = row[7]
    opened_at = row[8]
    return TrailState(
        side=Side(str(row[2])),
        entry_price=Decimal(str(row[3])),
        tick_size=Decimal(str(row[4])),
        extreme_price=Decimal(str(row[5])),
        phase=TrailPhase(str(row[6])),
        wanted_stop=None if stop is None else Decimal(str(stop)),
        opened_at_ms=None if opened_at is None else int(str(opened_at)),
    )
