"""Settles that could not reach Redis, kept in the local SQLite database until Redis is back
(`RedisCounters.replay`), so no usage is lost to an outage. Bounded: past `MAX_ROWS` a new
settle is refused (and counted as dropped) rather than filling the disk."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

import orjson

from tokenomics.domain.errors import StoreError
from tokenomics.store.db import Database

if TYPE_CHECKING:
    from pathlib import Path

MAX_ROWS = 100_000
_CREATE = (
    "CREATE TABLE IF NOT EXISTS redis_pending ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT, keys TEXT NOT NULL, args TEXT NOT NULL)"
)


class PendingSettles:
    def __init__(self, db: Database) -> None:
        self._db = db
        with db.write() as conn:
            conn.execute(_CREATE)

    def add(self, keys: list[str], args: list[str]) -> bool:
        """Queue one settle; False when the queue is full (or the disk refuses it)."""
        return self.add_many([(keys, args)]) == 1

    def add_many(self, rows: list[tuple[list[str], list[str]]]) -> int:
        """Queue settles in one transaction; how many were kept (0 when the disk refuses
        them, fewer than given when the queue fills up)."""
        try:
            with self._db.write() as conn:
                (count,) = conn.execute("SELECT COUNT(*) FROM redis_pending").fetchone()
                room = max(MAX_ROWS - int(count), 0)
                conn.executemany(
                    "INSERT INTO redis_pending (keys, args) VALUES (?, ?)",
                    [(orjson.dumps(k).decode(), orjson.dumps(a).decode()) for k, a in rows[:room]],
                )
        except (StoreError, sqlite3.Error):
            return 0
        return min(len(rows), room)

    def take(self, limit: int) -> list[tuple[int, list[str], list[str]]]:
        rows = self._db.query(
            "SELECT id, keys, args FROM redis_pending ORDER BY id LIMIT ?", (limit,)
        )
        return [(int(i), orjson.loads(k), orjson.loads(a)) for i, k, a in rows]

    def delete(self, ids: list[int]) -> None:
        with self._db.write() as conn:
            conn.executemany("DELETE FROM redis_pending WHERE id = ?", [(i,) for i in ids])

    def count(self) -> int:
        return int(self._db.query("SELECT COUNT(*) FROM redis_pending")[0][0])

    def close(self) -> None:
        self._db.close()


def pending_count(db_path: Path) -> int:
    """Settles waiting in the database at `db_path` (0 when there is no queue), read-only."""
    if not db_path.exists():
        return 0
    db = Database.open(db_path)
    try:
        rows = db.query("SELECT name FROM sqlite_master WHERE name = 'redis_pending'")
        return int(db.query("SELECT COUNT(*) FROM redis_pending")[0][0]) if rows else 0
    finally:
        db.close()
