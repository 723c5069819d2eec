"""The embedded SQLite database (WAL): connection, transactions and versioned migrations.

The only module that talks to `sqlite3` directly; sqlite errors become `StoreError` here.
Several processes (a running server and the CLI) use the same file at once: WAL lets readers
run beside one writer, `BEGIN IMMEDIATE` plus a busy timeout serialises writers.
"""

from __future__ import annotations

import sqlite3
import threading
from contextlib import contextmanager
from typing import TYPE_CHECKING

from tokenomics.config.private_files import narrow_file, private_dir, touch_private
from tokenomics.domain.errors import StoreError
from tokenomics.store import ledger_schema

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path
from typing import Any

BUSY_TIMEOUT_MS = 5000

# Entry i holds the statements that move the schema from version i to i+1; each runs in the
# same write transaction as the version bump. Never edit a released entry: append a new one.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """
    CREATE TABLE tokens (
        hash        TEXT PRIMARY KEY,
        policy      TEXT NOT NULL DEFAULT '',
        encrypted   TEXT NOT NULL DEFAULT '',
        enc_version INTEGER NOT NULL DEFAULT 0,
        created_at  TEXT NOT NULL,
        expires_at  TEXT
    ) WITHOUT ROWID
    """,
    ),
    (
        """
    CREATE TABLE usage (
        hash       TEXT PRIMARY KEY,
        tokens     INTEGER NOT NULL,
        cost_usd   REAL NOT NULL,
        updated_at TEXT NOT NULL
    ) WITHOUT ROWID
    """,
    ),
    # A counter bumped by every token change, so a server can tell token edits apart from the
    # usage writes that also change the database file.
    (
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID",
        "INSERT INTO meta (key, value) VALUES ('tokens_generation', 0)",
        """
    CREATE TRIGGER tokens_insert AFTER INSERT ON tokens BEGIN
        UPDATE meta SET value = value + 1 WHERE key = 'tokens_generation';
    END
    """,
        """
    CREATE TRIGGER tokens_update AFTER UPDATE ON tokens BEGIN
        UPDATE meta SET value = value + 1 WHERE key = 'tokens_generation';
    END
    """,
        """
    CREATE TRIGGER tokens_delete AFTER DELETE ON tokens BEGIN
        UPDATE meta SET value = value + 1 WHERE key = 'tokens_generation';
    END
    """,
    ),
    # The event outbox (`store/outbox.py`): events appended in the writer's transaction, each
    # webhook's position in them (`cursor`) with the attempts on its head event, the events
    # it gave up on, and the token expiries already announced (`token.expired` once a token).
    (
        """
    CREATE TABLE outbox_events (
        seq     INTEGER PRIMARY KEY AUTOINCREMENT,
        id      TEXT NOT NULL,
        type    TEXT NOT NULL,
        created REAL NOT NULL,
        body    BLOB NOT NULL
    )
    """,
        """
    CREATE TABLE outbox_targets (
        name            TEXT PRIMARY KEY,
        cursor          INTEGER NOT NULL DEFAULT 0,
        head            INTEGER NOT NULL DEFAULT 0,
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_at REAL NOT NULL DEFAULT 0,
        last_error      TEXT NOT NULL DEFAULT '',
        delivered       INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID
    """,
        """
    CREATE TABLE outbox_dead (
        name     TEXT NOT NULL,
        seq      INTEGER NOT NULL,
        attempts INTEGER NOT NULL,
        error    TEXT NOT NULL,
        dead_at  REAL NOT NULL,
        retry    INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (name, seq)
    ) WITHOUT ROWID
    """,
        "CREATE TABLE expiry_notices (hash TEXT PRIMARY KEY, expires_at TEXT) WITHOUT ROWID",
    ),
    # Where a token came from: "" created here, "remote" mirrored from a central server (the
    # syncer deletes those the central server no longer has; local ones it never touches).
    ("ALTER TABLE tokens ADD COLUMN origin TEXT NOT NULL DEFAULT ''",),
    ledger_schema.MIGRATION,  # the ledger index (a cache of the session files)
    # Each webhook's delivery counters, kept with its cursor: delivery runs in a process of its
    # own, and `/metrics` of the serving process reads them from here.
    (
        "ALTER TABLE outbox_targets ADD COLUMN failed INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE outbox_targets ADD COLUMN retried INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE outbox_targets ADD COLUMN dead_lettered INTEGER NOT NULL DEFAULT 0",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)


def _translate(exc: sqlite3.Error, path: Path) -> StoreError:
    text = str(exc)
    if "locked" in text or "busy" in text:
        return StoreError(
            f"the token store {path} is busy (another process holds a write lock); try again"
        )
    if isinstance(exc, sqlite3.DatabaseError) and "not a database" in text:
        return StoreError(f"{path} is not a Tokenomics token store (not an SQLite database)")
    return StoreError(f"token store {path}: {text}")


class Database:
    """One SQLite connection in autocommit mode; writes go through `write()`."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path
        # One connection serves worker threads one transaction at a time: two threads beginning
        # transactions on it at once would fail ("cannot start a transaction within a
        # transaction") or see each other's uncommitted rows.
        self._lock = threading.RLock()

    @classmethod
    def open(cls, path: Path) -> Database:
        """Open (creating the file 0600 and its directory 0700) and migrate to the latest schema."""
        try:
            private_dir(path.parent)
            # SQLite gives -wal/-shm the db file's mode. An existing file is narrowed by
            # name, never opened: closing a descriptor of it would drop the locks of this
            # process's other connections (POSIX fcntl semantics).
            for name in (path, *(path.with_name(path.name + s) for s in ("-wal", "-shm"))):
                if name.exists():
                    narrow_file(name)
                elif name == path:
                    touch_private(name)
        except OSError as exc:
            raise StoreError(
                f"cannot create the token store {path}: {exc.strerror or exc}"
            ) from None
        try:
            conn = sqlite3.connect(
                path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
            )
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
        except sqlite3.Error as exc:
            raise _translate(exc, path) from None
        db = cls(conn, path)
        db._migrate()
        return db

    @classmethod
    def in_memory(cls) -> Database:
        """A private database in memory with the latest schema (when the file cannot be used)."""
        from pathlib import Path

        conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        db = cls(conn, Path(":memory:"))
        db._migrate()
        return db

    def _migrate(self) -> None:
        with self.write() as conn:
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"the token store {self.path} has schema version {version}, newer than this "
                    f"Tokenomics understands ({SCHEMA_VERSION}); upgrade Tokenomics"
                )
            for number in range(version, SCHEMA_VERSION):
                for statement in MIGRATIONS[number]:
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {number + 1}")

    @property
    def schema_version(self) -> int:
        return int(self.query("PRAGMA user_version")[0][0])

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (`BEGIN IMMEDIATE`): committed on success, rolled back on error."""
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise _translate(exc, self.path) from None
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            try:
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                self._conn.execute("ROLLBACK")
                raise _translate(exc, self.path) from None

    def query(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return list(self._conn.execute(sql, params).fetchall())
            except sqlite3.Error as exc:
                raise _translate(exc, self.path) from None

    def iterate(self, sql: str, params: tuple[object, ...] = ()) -> Iterator[tuple[Any, ...]]:
        """The rows of a query as they are read (for results too large to hold at once)."""
        try:
            cursor = self._conn.execute(sql, params)
            while rows := cursor.fetchmany(1000):
                yield from rows
        except sqlite3.Error as exc:
            raise _translate(exc, self.path) from None

    def data_version(self) -> int:
        """Changes whenever another connection commits: the cheap way to notice external writes."""
        return int(self.query("PRAGMA data_version")[0][0])

    def close(self) -> None:
        self._conn.close()
