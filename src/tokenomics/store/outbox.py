"""The event outbox (decision D19): events are rows in the same SQLite database as the tokens.

An event is committed here before anything is sent, so a crash, a SIGKILL or a receiver that is
down for an hour loses nothing. Every writer appends: the token store in the transaction of the
change (`append_in`), the server's event writer in batches, the CLI through the token store.
The dispatcher is the only reader: each webhook (a *target*, by name) has a `cursor` (the last
event it is done with: delivered, dead-lettered or not wanted), the attempts made on its head
event, and a dead-letter list that `events retry` can send round again. Pages are read a few
rows at a time, so a burst of events never sits in memory. sqlite errors become `StoreError`.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from tokenomics.domain.errors import StoreError

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from tokenomics.domain.events import Event
    from tokenomics.store.db import Database

_INSERT = "INSERT INTO outbox_events (id, type, created, body) VALUES (?, ?, ?, ?)"
Listing = Literal["all", "pending", "dead"]


def _created(event: Event) -> float:
    """The event's time as epoch seconds (its RFC 3339 timestamp), for the maximum age."""
    try:
        return datetime.fromisoformat(event.timestamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return time.time()


def append_in(conn: sqlite3.Connection, events: Sequence[Event]) -> None:
    """Append inside the caller's write transaction (committed, or rolled back, with it)."""
    conn.executemany(_INSERT, [(e.id, e.type, _created(e), e.envelope()) for e in events])


def filter_sql(filters: Sequence[str]) -> tuple[str, list[object]]:
    """A webhook's `events` filter as an SQL condition on `type` (see `domain.events.matches`)."""
    if not filters or any(entry == "*" for entry in filters):
        return "1", []
    parts: list[str] = []
    params: list[object] = []
    for entry in filters:
        if entry.endswith("*"):
            parts.append("substr(type, 1, ?) = ?")
            params += [len(entry) - 1, entry[:-1]]
        else:
            parts.append("type = ?")
            params.append(entry)
    return "(" + " OR ".join(parts) + ")", params


@dataclass(frozen=True, slots=True)
class Pending:
    """An event a target still has to deliver, with the attempts made so far."""

    seq: int
    id: str
    type: str
    body: bytes
    since: float  # epoch seconds its maximum age counts from (created, or sent round again)
    attempts: int = 0
    next_attempt_at: float = 0.0
    retry: bool = False  # from the dead-letter list (`events retry`), not after the cursor


@dataclass(frozen=True, slots=True)
class Counters:
    """A target's delivery counters (`/metrics`)."""

    target: str
    delivered: int
    failed: int  # attempts that did not deliver
    retried: int  # failed attempts scheduled again
    dead_lettered: int
    pending: int


@dataclass(frozen=True, slots=True)
class Row:
    """One line of `tokenomics events list`."""

    target: str
    seq: int
    id: str
    type: str
    created: float
    state: str  # pending | dead | retry
    attempts: int
    error: str


class Outbox:
    def __init__(self, db: Database) -> None:
        self._db = db

    def _error(self, exc: sqlite3.Error) -> StoreError:
        return StoreError(f"event outbox {self._db.path}: {exc}")

    # ── appending ────────────────────────────────────────────────────────────────────────

    def append(self, events: Sequence[Event]) -> None:
        if not events:
            return
        with self._db.write() as conn:
            try:
                append_in(conn, events)
            except sqlite3.Error as exc:
                raise self._error(exc) from None

    def append_expired(self, token_hash: str, expires_at: str, event: Event) -> bool:
        """Append `token.expired` once per token and expiry; False when it was already."""
        with self._db.write() as conn:
            try:
                inserted = conn.execute(
                    "INSERT OR IGNORE INTO expiry_notices (hash, expires_at) VALUES (?, ?)",
                    (token_hash, expires_at),
                ).rowcount
                if inserted:
                    append_in(conn, [event])
            except sqlite3.Error as exc:
                raise self._error(exc) from None
        return bool(inserted)

    def change_mark(self) -> tuple[int, int]:
        """Changes when events are appended or sent round again (`events retry`), by any
        process: what the dispatcher polls."""
        rows = self._db.query("SELECT count(*) FROM outbox_dead WHERE retry = 1")
        return self.last_seq(), int(rows[0][0])

    def last_seq(self) -> int:
        """The newest event's number: a cheap way to notice appends by another process."""
        rows = self._db.query("SELECT seq FROM sqlite_sequence WHERE name = 'outbox_events'")
        return int(rows[0][0]) if rows else 0

    # ── delivering ───────────────────────────────────────────────────────────────────────

    def page(self, target: str, filters: Sequence[str], limit: int) -> list[Pending]:
        """The next events of `target` in order: those sent round again first, then the ones
        after its cursor that its filter wants. With none wanted, the cursor moves past the
        unwanted ones (so they can be pruned)."""
        where, params = filter_sql(filters)
        with self._db.write() as conn:
            conn.execute("INSERT OR IGNORE INTO outbox_targets (name) VALUES (?)", (target,))
            cursor, head, attempts, next_at = conn.execute(
                "SELECT cursor, head, attempts, next_attempt_at FROM outbox_targets"
                " WHERE name = ?", (target,),
            ).fetchone()  # fmt: skip
            rows = conn.execute(
                "SELECT e.seq, e.id, e.type, e.body, d.dead_at, 1 FROM outbox_dead d"
                " JOIN outbox_events e ON e.seq = d.seq WHERE d.name = ? AND d.retry = 1"
                " ORDER BY d.seq LIMIT ?", (target, limit),
            ).fetchall()  # fmt: skip
            rows += conn.execute(
                f"SELECT seq, id, type, body, created, 0 FROM outbox_events"
                f" WHERE seq > ? AND {where} ORDER BY seq LIMIT ?",
                (cursor, *params, limit - len(rows)),
            ).fetchall()
            if not rows:
                conn.execute(
                    "UPDATE outbox_targets SET cursor = max(cursor,"
                    " (SELECT coalesce(max(seq), 0) FROM outbox_events)) WHERE name = ?",
                    (target,),
                )
        items = [Pending(int(s), str(i), str(t), bytes(b), float(c), retry=bool(r))
                 for s, i, t, b, c, r in rows]  # fmt: skip
        if items and items[0].seq == head:
            first = items[0]
            items[0] = Pending(first.seq, first.id, first.type, first.body, first.since,
                               int(attempts), float(next_at), first.retry)  # fmt: skip
        return items

    def delivered(self, target: str, item: Pending) -> None:
        with self._db.write() as conn:
            self._done(conn, target, item)
            conn.execute(
                "UPDATE outbox_targets SET delivered = delivered + 1 WHERE name = ?", (target,)
            )

    def advance(self, target: str, seq: int, count: int) -> None:
        """Events after the cursor up to `seq` are done (`count` of them delivered): the
        dispatcher stores its progress once per page, not once per event."""
        with self._db.write() as conn:
            conn.execute(
                "UPDATE outbox_targets SET cursor = max(cursor, ?), delivered = delivered + ?"
                " WHERE name = ?",
                (seq, count, target),
            )
            conn.execute(
                "UPDATE outbox_targets SET head = 0, attempts = 0, next_attempt_at = 0,"
                " last_error = '' WHERE name = ? AND head <= ?",
                (target, seq),
            )

    def failed(
        self, target: str, item: Pending, attempts: int, next_attempt_at: float, error: str
    ) -> None:
        """Keep the attempts on the head event (a restart goes on with the same backoff)."""
        with self._db.write() as conn:
            conn.execute(
                "UPDATE outbox_targets SET head = ?, attempts = ?, next_attempt_at = ?,"
                " last_error = ?, failed = failed + 1, retried = retried + 1 WHERE name = ?",
                (item.seq, attempts, next_attempt_at, error[:500], target),
            )

    def dead_letter(
        self, target: str, item: Pending, attempts: int, error: str, now: float
    ) -> None:
        with self._db.write() as conn:
            self._done(conn, target, item)
            conn.execute(
                "INSERT OR REPLACE INTO outbox_dead (name, seq, attempts, error, dead_at, retry)"
                " VALUES (?, ?, ?, ?, ?, 0)",
                (target, item.seq, attempts, error[:500], now),
            )
            conn.execute(
                "UPDATE outbox_targets SET failed = failed + 1, dead_lettered = dead_lettered + 1"
                " WHERE name = ?",
                (target,),
            )

    def _done(self, conn: sqlite3.Connection, target: str, item: Pending) -> None:
        if item.retry:
            conn.execute("DELETE FROM outbox_dead WHERE name = ? AND seq = ?", (target, item.seq))
        else:
            conn.execute(
                "UPDATE outbox_targets SET cursor = max(cursor, ?) WHERE name = ?",
                (item.seq, target),
            )
        conn.execute(
            "UPDATE outbox_targets SET head = 0, attempts = 0, next_attempt_at = 0,"
            " last_error = '' WHERE name = ?",
            (target,),
        )

    # ── operators ────────────────────────────────────────────────────────────────────────

    def pending_count(self, target: str, filters: Sequence[str]) -> int:
        where, params = filter_sql(filters)
        rows = self._db.query(
            f"SELECT count(*) FROM outbox_events WHERE {where} AND seq > coalesce("
            "(SELECT cursor FROM outbox_targets WHERE name = ?), 0)",
            (*params, target),
        )
        retry = self._db.query(
            "SELECT count(*) FROM outbox_dead WHERE name = ? AND retry = 1", (target,)
        )
        return int(rows[0][0]) + int(retry[0][0])

    def counters(self, targets: Sequence[tuple[str, Sequence[str]]]) -> list[Counters]:
        """Each target's delivery counters as stored by whichever process delivers (they
        survive restarts: Prometheus counters that never go down), and its pending events."""
        out: list[Counters] = []
        for name, filters in targets:
            rows = self._db.query(
                "SELECT delivered, failed, retried, dead_lettered FROM outbox_targets"
                " WHERE name = ?", (name,),
            )  # fmt: skip
            delivered, failed, retried, dead = rows[0] if rows else (0, 0, 0, 0)
            pending = self.pending_count(name, filters)
            out.append(Counters(name, delivered, failed, retried, dead, pending))
        return out

    def dead_count(self, target: str) -> int:
        rows = self._db.query(
            "SELECT count(*) FROM outbox_dead WHERE name = ? AND retry = 0", (target,)
        )
        return int(rows[0][0])

    def retry_dead(self, target: str | None = None, now: float | None = None) -> int:
        """Send dead-lettered events (of one target, or all) round again, their maximum age
        counted from `now`; how many."""
        with self._db.write() as conn:
            sql = "UPDATE outbox_dead SET retry = 1, dead_at = ? WHERE retry = 0"
            params: tuple[object, ...] = (time.time() if now is None else now,)
            if target is not None:
                sql, params = sql + " AND name = ?", (*params, target)
            return int(conn.execute(sql, params).rowcount)

    def rows(
        self, targets: Sequence[tuple[str, Sequence[str]]], listing: Listing, limit: int = 1000
    ) -> Iterator[Row]:
        """What `events list` shows: per target, its pending events and/or its dead ones."""
        for name, filters in targets:
            if listing in ("all", "dead"):
                yield from self._dead_rows(name, limit)
            if listing in ("all", "pending"):
                yield from self._pending_rows(name, filters, limit)

    def _dead_rows(self, name: str, limit: int) -> Iterator[Row]:
        for seq, eid, kind, created, attempts, error, retry in self._db.query(
            "SELECT e.seq, e.id, e.type, e.created, d.attempts, d.error, d.retry"
            " FROM outbox_dead d JOIN outbox_events e ON e.seq = d.seq WHERE d.name = ?"
            " ORDER BY d.seq LIMIT ?", (name, limit),
        ):  # fmt: skip
            state = "retry" if retry else "dead"
            yield Row(name, seq, eid, kind, created, state, attempts, error)

    def _pending_rows(self, name: str, filters: Sequence[str], limit: int) -> Iterator[Row]:
        where, params = filter_sql(filters)
        state = self._db.query(
            "SELECT cursor, head, attempts, last_error FROM outbox_targets WHERE name = ?",
            (name,),
        )
        cursor, head, attempts, error = state[0] if state else (0, 0, 0, "")
        for seq, eid, kind, created in self._db.query(
            f"SELECT seq, id, type, created FROM outbox_events WHERE seq > ? AND {where}"
            " ORDER BY seq LIMIT ?", (cursor, *params, limit),
        ):  # fmt: skip
            tried = (attempts, error) if seq == head else (0, "")
            yield Row(name, seq, eid, kind, created, "pending", *tried)

    def prune(self, targets: Sequence[str], older_than: float) -> int:
        """Forget events every target is done with (and, with no target at all, those older
        than `older_than`), except dead-lettered ones, still listed and retryable."""
        with self._db.write() as conn:
            params: tuple[float]
            if targets:
                marks = ",".join("?" * len(targets))
                (low,) = conn.execute(
                    f"SELECT min(cursor) FROM outbox_targets WHERE name IN ({marks})",
                    tuple(targets),
                ).fetchone()
                if low is None or conn.execute(
                    f"SELECT count(*) FROM outbox_targets WHERE name IN ({marks})", tuple(targets)
                ).fetchone()[0] < len(targets):
                    return 0
                cond, params = "seq <= ?", (float(low),)
            else:
                cond, params = "created < ?", (older_than,)
            return int(conn.execute(
                f"DELETE FROM outbox_events WHERE {cond}"
                " AND seq NOT IN (SELECT seq FROM outbox_dead)", params,
            ).rowcount)  # fmt: skip
