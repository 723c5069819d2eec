"""Keeping the ledger index (`store/ledger_index.py`) level with the session files.

`sync` compares `{dir}/sessions` with what the index holds for it, by file name, size and
modification time: new and changed files are read and stored (in transactions of about
`BATCH_ROWS` requests), vanished ones dropped. A session's journal stands for it until its JSON
exists (a running or crashed session, read-only like `ledger sessions` does), and a running
journal, which grows, is read again each time. `index_file` stores one file the moment the
server writes or recovers it (`services/ledger.py`, on its worker thread); it never raises,
since the index is only a cache: what it missed the next `sync` reads. `rebuild` forgets the
directory and syncs it again. Blocking: call from a worker thread on the server.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from tokenomics.domain.errors import StoreError
from tokenomics.domain.ledger_session import is_session
from tokenomics.services.ledger_files import JOURNAL, SESSION, journal_session
from tokenomics.store.ledger_index import FileStamp, LedgerIndex

if TYPE_CHECKING:
    from collections.abc import Mapping

BATCH_ROWS = 50_000
logger = logging.getLogger("tokenomics.ledger")
_KINDS = {SESSION: "json", JOURNAL: "journal"}


@dataclass(frozen=True, slots=True)
class SyncResult:
    files: int  # read and stored
    requests: int
    removed: int


def _stamp(path: Path) -> FileStamp:
    info = path.stat()
    return FileStamp(_KINDS[path.suffix], info.st_mtime_ns, info.st_size)


def listing(sessions: Path) -> dict[str, Path]:
    """The file that stands for each session stem: its JSON, else its journal."""
    found: dict[str, Path] = {}
    try:
        entries = list(os.scandir(sessions))
    except OSError:
        return {}
    for entry in entries:
        path = Path(entry.path)
        if path.suffix not in _KINDS or not entry.is_file():
            continue
        if path.suffix == SESSION or path.stem not in found:
            found[path.stem] = path
    return found


def read_session(path: Path) -> Mapping[str, Any] | None:
    """The session in a file; None when it is not one (raises OSError when unreadable now)."""
    if path.suffix == JOURNAL:
        data: Any = journal_session(path)
    else:
        try:
            data = orjson.loads(path.read_bytes())
        except orjson.JSONDecodeError:
            return None
    return data if is_session(data) else None


class LedgerIndexer:
    """The index of one sessions directory."""

    def __init__(self, index: LedgerIndex, sessions: Path) -> None:
        self.index = index
        self.sessions = sessions
        self.key = os.path.abspath(sessions)

    def sync(self) -> SyncResult:
        """Bring the index level with the directory; raises StoreError."""
        files = listing(self.sessions)
        known = self.index.files(self.key)
        gone = [stem for stem in known if stem not in files]
        self.index.forget(self.key, gone)
        batch: list[tuple[str, FileStamp, Mapping[str, Any] | None]] = []
        pending = stored = written = 0
        for stem in sorted(files):
            path = files[stem]
            try:
                stamp = _stamp(path)
                if known.get(stem) == stamp:
                    continue
                session = read_session(path)
            except OSError:
                continue  # gone or unreadable right now: the next sync tries again
            batch.append((stem, stamp, session))
            pending += len(session.get("requests") or ()) if session else 0
            if pending >= BATCH_ROWS:
                written += self.index.replace(self.key, batch)
                stored, batch, pending = stored + len(batch), [], 0
        written += self.index.replace(self.key, batch) if batch else 0
        return SyncResult(stored + len(batch), written, len(gone))

    def rebuild(self) -> SyncResult:
        self.index.forget(self.key)
        return self.sync()

    def index_file(self, path: Path) -> None:
        """Store the session just written (or recovered) at `path`; logs, never raises."""
        try:
            self.index.replace(self.key, [(path.stem, _stamp(path), read_session(path))])
        except (OSError, StoreError) as exc:
            logger.warning("ledger index: could not index %s: %s", path.name, exc)

    def close(self) -> None:
        self.index.close()


def open_indexer(db_path: Path, sessions: Path) -> LedgerIndexer | None:
    """The indexer the server hands its ledger; None (logged) when the store cannot be opened,
    the sessions are then indexed by the next `ledger` command that reads them."""
    from tokenomics.store.db import Database

    try:
        return LedgerIndexer(LedgerIndex(Database.open(db_path)), sessions)
    except StoreError as exc:
        logger.warning("ledger index: %s; sessions are indexed when next read", exc)
        return None
