"""The ledger as the admin API reads it, kept up to date incrementally.

`{dir}/sessions` holds finished sessions (`<stem>.json`, written once) and journals
(`<stem>.journal`, appended to while their process lives; a session JSON replaces its journal).
Each refresh stats the directory: a new or replaced file is read once, a journal only from where
the last read stopped, and a file that went away (or was replaced by its JSON) has its numbers
taken away again (`aggregate.Aggregate.merge`). So a page view costs a directory listing, not a
re-read of 100,000 requests. Blocking I/O: call `refresh` from a worker thread.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson

from tokenomics.domain.ledger_session import is_session, session_requests
from tokenomics.services.admin.aggregate import Aggregate
from tokenomics.services.ledger_files import JOURNAL, SESSION

if TYPE_CHECKING:
    from pathlib import Path

RECENT = 50
Entry = dict[str, Any]


@dataclass
class FileState:
    """What one session file contributed: its numbers, its newest requests, its metadata."""

    path: Path
    signature: tuple[int, int, int]  # inode, size, mtime
    meta: Entry  # session_id, started_at, ended_at, duration_ms, git, running
    aggregate: Aggregate = field(default_factory=Aggregate)
    recent: deque[Entry] = field(default_factory=lambda: deque(maxlen=RECENT))
    offset: int = 0  # journals: bytes read so far (whole lines only)

    @property
    def branch(self) -> str:
        git = self.meta.get("git")
        branch = git.get("branch", "") if isinstance(git, dict) else ""
        return branch if isinstance(branch, str) else ""

    def add(self, entry: Entry) -> None:
        self.aggregate.add_entry(entry)
        self.recent.append(entry)


def _signature(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def _locked(path: Path) -> bool:
    """A live process holds the journal (ours included: flock conflicts across open files)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def read_session_file(path: Path, signature: tuple[int, int, int]) -> FileState | None:
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    if not is_session(data):
        return None
    keys = ("session_id", "started_at", "ended_at", "duration_ms", "git")
    meta = {k: data.get(k) for k in keys} | {"running": False}
    state = FileState(path, signature, meta)
    for entry in session_requests(data):
        state.add(entry)
    return state


def _journal_lines(state: FileState) -> list[bytes]:
    """The whole lines appended since the last read (a partly written last line waits)."""
    with open(state.path, "rb") as f:
        f.seek(state.offset)
        data = f.read()
    end = data.rfind(b"\n") + 1
    state.offset += end
    return data[:end].split(b"\n")[:-1] if end else []


def _record(line: bytes) -> Entry | None:
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    return record if isinstance(record, dict) else None


def read_journal_lines(state: FileState) -> bool:
    """Add the journal's new lines to `state`; False while its header cannot be read."""
    header_pending = state.offset == 0
    for line in _journal_lines(state):
        record = _record(line)
        if header_pending:
            header_pending = False
            if record is None or not isinstance(record.get("session_id"), str):
                return False
            git = record.get("git")
            state.meta.update(
                session_id=record["session_id"], started_at=record.get("started_at", ""),
                git=git if isinstance(git, dict) else {},
            )  # fmt: skip
            continue
        if record is None:
            continue
        if isinstance(record.get("git"), dict):
            state.meta["git"] = {**state.meta.get("git", {}), **record["git"]}
        request = record.get("request")
        if isinstance(request, dict):
            state.add(request)
            state.meta["ended_at"] = request.get("timestamp", state.meta.get("ended_at"))
    return bool(state.meta.get("session_id"))


def new_journal_state(path: Path, signature: tuple[int, int, int]) -> FileState | None:
    state = FileState(path, signature, {"session_id": "", "git": {}, "running": False})
    with contextlib.suppress(OSError):
        if read_journal_lines(state):
            return state
    return None


class LedgerIndex:
    """Every session file's contribution and their sum, refreshed on demand."""

    def __init__(self, sessions: Path | None) -> None:
        self.sessions = sessions
        self.files: dict[str, FileState] = {}  # by stem
        self.unreadable: dict[Path, tuple[int, int, int]] = {}  # not read again unless changed
        self.total = Aggregate()
        self.version = 0  # moves whenever the numbers do
        self.lock = threading.Lock()

    def _chosen(self) -> dict[str, Path]:
        """Each session's file: its JSON when there is one, else its journal."""
        chosen: dict[str, Path] = {}
        if self.sessions is None:
            return chosen
        try:
            entries = list(os.scandir(self.sessions))
        except OSError:
            return chosen
        for entry in entries:
            stem, dot, suffix = entry.name.rpartition(".")
            if not dot or f".{suffix}" not in (SESSION, JOURNAL) or not entry.is_file():
                continue
            if f".{suffix}" == SESSION or stem not in chosen:
                chosen[stem] = self.sessions / entry.name
        return chosen

    def _drop(self, stem: str) -> None:
        old = self.files.pop(stem)
        self.total.merge(old.aggregate, -1)
        self.version += 1

    def _load(self, stem: str, path: Path, signature: tuple[int, int, int]) -> None:
        if path.suffix == SESSION:
            state = read_session_file(path, signature)
        else:
            state = new_journal_state(path, signature)
        if state is None:
            self.unreadable[path] = signature
            return
        self.unreadable.pop(path, None)
        self.files[stem] = state
        self.total.merge(state.aggregate)
        self.version += 1

    def _grow(self, state: FileState, signature: tuple[int, int, int]) -> None:
        before = state.aggregate
        state.aggregate = Aggregate()
        with contextlib.suppress(OSError):
            read_journal_lines(state)
        self.total.merge(state.aggregate)
        before.merge(state.aggregate)
        state.aggregate, state.signature = before, signature
        self.version += 1

    def refresh(self) -> None:
        with self.lock:
            chosen = self._chosen()
            for stem in [s for s, f in self.files.items() if chosen.get(s) != f.path]:
                self._drop(stem)
            for stem, path in chosen.items():
                signature = _signature(path)
                if signature is not None:  # else gone since the listing: dropped next time
                    self._update(stem, path, signature)
                self._mark_running(stem)

    def _update(self, stem: str, path: Path, signature: tuple[int, int, int]) -> None:
        state = self.files.get(stem)
        known = state.signature if state is not None else self.unreadable.get(path)
        if known == signature:
            return
        if state is None:
            self._load(stem, path, signature)
        elif (
            path.suffix == JOURNAL
            and signature[0] == state.signature[0]
            and (signature[1] >= state.offset)
        ):
            self._grow(state, signature)
        else:
            self._drop(stem)
            self._load(stem, path, signature)

    def _mark_running(self, stem: str) -> None:
        state = self.files.get(stem)
        if state is None or state.path.suffix != JOURNAL:
            return
        running = _locked(state.path)
        if running != state.meta.get("running"):
            state.meta["running"] = running
            self.version += 1
        if running:
            state.meta["ended_at"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
