"""The usage store: budget totals per token hash, written through from memory (decision D14).

The proxy keeps the live counters in `domain.budget.Budgets`; `services.usage_writer` saves the
changed totals here every half second, and `load()` seeds the counters at start, so budgets
survive a restart. sqlite errors become `StoreError` here.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

from tokenomics.domain.budget import Spend
from tokenomics.domain.errors import StoreError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from tokenomics.store.db import Database

_UPSERT = (
    "INSERT INTO usage (hash, tokens, cost_usd, updated_at) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (hash) DO UPDATE SET tokens = excluded.tokens,"
    " cost_usd = excluded.cost_usd, updated_at = excluded.updated_at"
)


class UsageStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def close(self) -> None:
        self._db.close()

    def _error(self, exc: sqlite3.Error) -> StoreError:
        return StoreError(f"usage store {self._db.path}: {exc}")

    def load(self) -> dict[str, Spend]:
        """Every persisted total, by token hash."""
        rows = self._db.query("SELECT hash, tokens, cost_usd FROM usage")
        return {str(h): Spend(int(tokens), float(cost)) for h, tokens, cost in rows}

    def save(self, totals: Mapping[str, Spend], now: str) -> None:
        """Upsert the given totals in one transaction (all or nothing); `now` is RFC 3339."""
        if not totals:
            return
        rows = [(key, spend.tokens, spend.cost_usd, now) for key, spend in totals.items()]
        with self._db.write() as conn:
            try:
                conn.executemany(_UPSERT, rows)
            except sqlite3.Error as exc:
                raise self._error(exc) from None

    def reset(self, key: str) -> None:
        """Forget the total of one token hash (its usage starts again from zero)."""
        with self._db.write() as conn:
            try:
                conn.execute("DELETE FROM usage WHERE hash = ?", (key,))
            except sqlite3.Error as exc:
                raise self._error(exc) from None
