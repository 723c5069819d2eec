"""The ledger as the admin API reads it: the SQLite ledger index (`services/ledger_index.py`,
the one `tokenomics ledger summary` reads), brought level with `{dir}/sessions` on each call.

`refresh` syncs the index by file name, size and modification time: a new or changed file is
read once, a vanished one (or a journal its session JSON replaced) dropped; the journal of a
running session, this server's own included, is read again whenever it has grown, so its
requests show at once. The numbers are SQL sums (`groups`); what the index does not hold — a
journal's liveness (a process holds its lock) and whole request entries for `recent` — is
read from the files. Blocking I/O: call from a worker thread.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tokenomics.domain.ledger_rows import Aggregate
from tokenomics.services.ledger_files import JOURNAL, SESSION, locked_by_other
from tokenomics.services.ledger_index import open_indexer, read_session
from tokenomics.store.ledger_query import LedgerFilter

if TYPE_CHECKING:
    from pathlib import Path

    from tokenomics.services.ledger_index import LedgerIndexer

Entry = dict[str, Any]


def locked(path: Path) -> bool:
    """A live process holds the journal (ours included); False when it is gone."""
    try:
        return locked_by_other(path)
    except OSError:
        return False


@dataclass(frozen=True, slots=True)
class SessionFile:
    """One indexed session file and what the list of sessions shows of it."""

    path: Path
    session_id: str
    started_at: str
    ended_at: str  # a running session's: now
    git: dict[str, str]
    running: bool


def _session_file(sessions: Path, row: tuple[str, ...], now: str) -> SessionFile:
    stem, kind, session_id, started, ended, branch, commit, repo = row
    path = sessions / f"{stem}{SESSION if kind == 'json' else JOURNAL}"
    running = kind != "json" and locked(path)
    git = {"branch": branch, "commit_start": commit, "repo_root": repo}
    git = {k: v for k, v in git.items() if v}
    return SessionFile(path, session_id, started, now if running else ended, git, running)


class LedgerView:
    """The ledger index of one sessions directory (None: the ledger is off, nothing in it)."""

    def __init__(self, indexer: LedgerIndexer | None) -> None:
        self.indexer = indexer
        self.lock = threading.Lock()  # one connection: one sync or query at a time
        self._synced = 0

    @classmethod
    def open(cls, db_path: Path, sessions: Path | None) -> LedgerView:
        return cls(open_indexer(db_path, sessions) if sessions is not None else None)

    def close(self) -> None:
        """Close the connection, unless a sync cut short at shutdown still holds it."""
        if self.indexer is not None and self.lock.acquire(blocking=False):
            try:
                self.indexer.close()
            finally:
                self.lock.release()

    def refresh(self) -> tuple[int, int]:
        """Sync the index; returns a version that moves whenever the numbers may have."""
        if self.indexer is None:
            return 0, 0
        with self.lock:
            result = self.indexer.sync()
            if result.files or result.removed:
                self._synced += 1
            return self._synced, self.indexer.index.db.data_version()

    def groups(
        self, *keys: str, kind: str = "", files: tuple[int, ...] = (), tokens: tuple[str, ...] = ()
    ) -> dict[tuple[str, ...], Aggregate]:
        """The sums per distinct value of `keys` (`store.ledger_query.GROUP_COLUMNS`), over the
        files of one `kind` ("json": finished sessions, "journal": running or crashed) or all,
        or over the `files` with these ids; of the requests of these `tokens` only (hashes)."""
        if self.indexer is None:
            return {}
        f = LedgerFilter(file_kind=kind, file_ids=files, tokens=tokens)
        with self.lock:
            rows = self.indexer.index.groups(self.indexer.key, f, keys)
        return dict(rows)

    def settled(self) -> frozenset[tuple[int, int, int, int]]:
        """The finished sessions' files (id, valid, mtime, size): changes whenever one is
        indexed or dropped, not when a running journal grows."""
        if self.indexer is None:
            return frozenset()
        with self.lock:
            return self.indexer.index.file_stamps(self.indexer.key, "json")

    def total(self) -> Aggregate:
        return self.groups().get((), Aggregate())

    def files(self) -> list[SessionFile]:
        if self.indexer is None:
            return []
        with self.lock:
            rows = self.indexer.index.session_files(self.indexer.key)
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return [_session_file(self.indexer.sessions, row, now) for row in rows]

    def newest(self, limit: int) -> list[Entry]:
        """The latest `limit` request entries (whole, from their files), newest first, each
        with its `session_id`."""
        if self.indexer is None:
            return []
        with self.lock:
            rows = self.indexer.index.newest(self.indexer.key, limit)
        read: dict[str, tuple[str, list[Any]]] = {}
        out: list[Entry] = []
        for stem, kind, seq in rows:
            if stem not in read:
                read[stem] = self._requests(stem, kind)
            session_id, requests = read[stem]
            if seq < len(requests) and isinstance(requests[seq], dict):
                out.append({**requests[seq], "session_id": session_id})
        return out

    def _requests(self, stem: str, kind: str) -> tuple[str, list[Any]]:
        """A file's session id and requests (none when it went away since it was indexed)."""
        assert self.indexer is not None
        path = self.indexer.sessions / f"{stem}{SESSION if kind == 'json' else JOURNAL}"
        session: Any = None
        with contextlib.suppress(OSError):
            session = read_session(path)
        if not session:
            return "", []
        requests = session.get("requests")
        return str(session.get("session_id", "")), requests if isinstance(requests, list) else []
