"""The ledger index: session files as SQLite rows, for summaries over a year of requests.

A cache of the session files in one `{dir}/sessions` directory (decision D17: the files stay
the source of truth). `replace` stores one file's session (or marks it unreadable) with the size
and modification time it was read at, in one transaction, so a reader never sees half a
session; `forget` drops files that are gone. The queries (`groups`, `session_count`,
`requests`) take a `LedgerFilter` and aggregate in SQL (`store/ledger_query.py`).
sqlite errors become `StoreError`. Blocking: call from a worker thread on the server.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tokenomics.domain.errors import StoreError
from tokenomics.domain.ledger_rows import (
    PER_REQUEST_SQL,
    REQUEST_COLUMNS,
    SUMMED,
    SUMS_SQL,
    Aggregate,
    request_rows,
    session_row,
)
from tokenomics.store.ledger_query import (
    FACETS,
    grouped_sql,
    requests_sql,
    sessions_sql,
)

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence

    from tokenomics.store.db import Database
    from tokenomics.store.ledger_query import LedgerFilter

_INSERT = (
    f"INSERT INTO ledger_requests (file_id, {', '.join(REQUEST_COLUMNS)})"
    f" VALUES (?, {', '.join('?' for _ in REQUEST_COLUMNS)})"
)
_DAILY_KEYS = "day, session_id, model, provider, token_hash, branch, git_commit, repo, agent"
_DAILY = (
    f"INSERT INTO ledger_daily (file_id, {_DAILY_KEYS}, {', '.join(SUMMED)})"
    f" SELECT file_id, {_DAILY_KEYS}, {SUMS_SQL} FROM"
    f" (SELECT file_id, {_DAILY_KEYS}, {PER_REQUEST_SQL} FROM ledger_requests WHERE file_id = ?)"
    " GROUP BY day, model, provider, token_hash, agent"
)
_FACETS = [
    f"INSERT INTO ledger_facets (file_id, day, kind, value, session_id, branch, git_commit, repo,"
    f" {', '.join(SUMMED)}) SELECT file_id, day, '{kind}', {column}, session_id, branch,"
    f" git_commit, repo, {SUMS_SQL} FROM ledger_daily WHERE file_id = ? GROUP BY day, {column}"
    for kind, column in FACETS.items()
]
_FILE = (
    "INSERT INTO ledger_files (dir, stem, kind, mtime_ns, size, valid, session_id, started_at,"
    " ended_at, branch, git_commit, repo, request_count) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)"
    " ON CONFLICT (dir, stem) DO UPDATE SET kind = excluded.kind, mtime_ns = excluded.mtime_ns,"
    " size = excluded.size, valid = excluded.valid, session_id = excluded.session_id,"
    " started_at = excluded.started_at, ended_at = excluded.ended_at,"
    " branch = excluded.branch, git_commit = excluded.git_commit, repo = excluded.repo,"
    " request_count = excluded.request_count RETURNING id"
)


@dataclass(frozen=True, slots=True)
class FileStamp:
    """How a session file looked when it was indexed."""

    kind: str  # "json" or "journal"
    mtime_ns: int
    size: int


# A summary scans the index once: memory-mapped reads, and room for its sorter in memory.
_READ_PRAGMAS = (
    "PRAGMA mmap_size = 1073741824",
    "PRAGMA cache_size = -65536",
    "PRAGMA temp_store = MEMORY",
)


class LedgerIndex:
    def __init__(self, db: Database) -> None:
        self._db = db
        for pragma in _READ_PRAGMAS:
            db.query(pragma)

    @property
    def db(self) -> Database:
        return self._db

    def close(self) -> None:
        self._db.close()

    def _error(self, exc: sqlite3.Error) -> StoreError:
        return StoreError(f"ledger index in {self._db.path}: {exc}")

    def files(self, directory: str) -> dict[str, FileStamp]:
        rows = self._db.query(
            "SELECT stem, kind, mtime_ns, size FROM ledger_files WHERE dir = ?", (directory,)
        )
        return {str(stem): FileStamp(str(k), int(m), int(s)) for stem, k, m, s in rows}

    def replace(
        self, directory: str, items: Sequence[tuple[str, FileStamp, Mapping[str, Any] | None]]
    ) -> int:
        """Store each (stem, stamp, session) in one transaction, replacing what the index had
        for that file; a None session marks an unreadable file (indexed, not counted). Returns
        how many requests were written."""
        written = 0
        with self._db.write() as conn:
            try:
                for stem, stamp, session in items:
                    written += self._replace_one(conn, directory, stem, stamp, session)
            except sqlite3.Error as exc:
                raise self._error(exc) from None
        return written

    def _replace_one(
        self, conn: sqlite3.Connection, directory: str, stem: str, stamp: FileStamp,
        session: Mapping[str, Any] | None,
    ) -> int:  # fmt: skip
        head = session_row(session or {})
        values = (
            directory, stem, stamp.kind, stamp.mtime_ns, stamp.size, int(session is not None),
            head.session_id, head.started_at, head.ended_at, head.branch, head.commit,
            head.repo, head.request_count,
        )  # fmt: skip
        file_id = conn.execute(_FILE, values).fetchone()[0]
        conn.execute("DELETE FROM ledger_requests WHERE file_id = ?", (file_id,))
        conn.execute("DELETE FROM ledger_daily WHERE file_id = ?", (file_id,))
        conn.execute("DELETE FROM ledger_facets WHERE file_id = ?", (file_id,))
        rows = request_rows(session) if session is not None else []
        conn.executemany(_INSERT, ((file_id, *row) for row in rows))
        conn.execute(_DAILY, (file_id,))
        for statement in _FACETS:
            conn.execute(statement, (file_id,))
        return len(rows)

    def forget(self, directory: str, stems: Sequence[str] | None = None) -> None:
        """Drop the given files of `directory` from the index (every file when None)."""
        where, params = "dir = ?", [directory]
        if stems is not None:
            if not stems:
                return
            where += f" AND stem IN ({', '.join('?' for _ in stems)})"
            params += list(stems)
        with self._db.write() as conn:
            try:
                for table in ("ledger_requests", "ledger_daily", "ledger_facets"):
                    conn.execute(
                        f"DELETE FROM {table} WHERE file_id IN"
                        f" (SELECT id FROM ledger_files WHERE {where})", params,
                    )  # fmt: skip
                conn.execute(f"DELETE FROM ledger_files WHERE {where}", params)
            except sqlite3.Error as exc:
                raise self._error(exc) from None

    def groups(
        self, directory: str, f: LedgerFilter, keys: Sequence[str]
    ) -> list[tuple[tuple[str, ...], Aggregate]]:
        """The sums of each distinct combination of `keys` (names of GROUP_COLUMNS); one
        group with an empty key for none (absent when nothing matched)."""
        sql, params = grouped_sql(directory, f, keys)
        width = len(keys)
        return [
            (tuple(str(v) for v in row[:width]), Aggregate.from_sql(row[width:]))
            for row in self._db.query(sql, tuple(params))
            if row[width]  # the one row of an empty ungrouped query has no requests
        ]

    def session_count(self, directory: str, f: LedgerFilter) -> int:
        sql, params = sessions_sql(directory, f)
        return int(self._db.query(sql, tuple(params))[0][0])

    def sessions(self, directory: str, ids: Sequence[str]) -> dict[str, tuple[str, str]]:
        """`started_at` and branch of the sessions with these ids."""
        if not ids:
            return {}
        marks = ", ".join("?" for _ in ids)
        rows = self._db.query(
            "SELECT session_id, started_at, branch FROM ledger_files"
            f" WHERE dir = ? AND valid AND session_id IN ({marks})", (directory, *ids),
        )  # fmt: skip
        return {str(sid): (str(started), str(branch)) for sid, started, branch in rows}

    def session_files(self, directory: str) -> list[tuple[str, ...]]:
        """Each readable file of `directory`: stem, kind, session_id, started_at, ended_at,
        branch, commit and repository."""
        rows = self._db.query(
            "SELECT stem, kind, session_id, started_at, ended_at, branch, git_commit, repo"
            " FROM ledger_files WHERE dir = ? AND valid", (directory,),
        )  # fmt: skip
        return [tuple(str(v) for v in row) for row in rows]

    def file_stamps(self, directory: str, kind: str) -> frozenset[tuple[int, int, int, int]]:
        """Id, validity, modification time and size of each file of `kind` in `directory`:
        a file indexed, changed or dropped changes the set."""
        rows = self._db.query(
            "SELECT id, valid, mtime_ns, size FROM ledger_files WHERE dir = ? AND kind = ?",
            (directory, kind),
        )
        return frozenset((int(i), int(v), int(m), int(s)) for i, v, m, s in rows)

    def newest(self, directory: str, limit: int) -> list[tuple[str, str, int]]:
        """The stem, kind and position of the latest `limit` requests, newest first."""
        rows = self._db.query(
            "SELECT f.stem, f.kind, r.seq FROM (SELECT file_id, seq FROM ledger_requests"
            " WHERE +file_id IN (SELECT id FROM ledger_files WHERE dir = ?)"
            " ORDER BY ts DESC, file_id DESC, seq DESC LIMIT ?) r"
            " JOIN ledger_files f ON f.id = r.file_id", (directory, limit),
        )  # fmt: skip
        return [(str(stem), str(kind), int(seq)) for stem, kind, seq in rows]

    def requests(self, directory: str, f: LedgerFilter) -> Iterator[tuple[Any, ...]]:
        """Every matching request in `REQUEST_COLUMNS` order (without `seq`), oldest first."""
        sql, params = requests_sql(directory, f, REQUEST_COLUMNS[1:])
        return self._db.iterate(sql, tuple(params))
