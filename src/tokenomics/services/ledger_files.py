"""The ledger's files (decisions D17, D18): the journal a running session appends to, the
session JSON written atomically at close, and the recovery of journals left by a crash.

    {dir}/sessions/<date>_<id>.journal   line 1: {"session_id", "started_at", "git", "pid"}
                                         then one {"request": entry, "events": [...],
                                         "spend": {"tokens", "cost_usd"}} per line, and once
                                         {"git": {...}} when the git context is known
    {dir}/sessions/<date>_<id>.json      the complete session (`cli.md` §7.3)

A record's `spend` is its token's budget counter (settled requests) just after it: recovery
raises the persisted counters to the last one of each token (`abandoned_spends`); each
journal is read once at start for that and its recovery (`abandoned_journals`).

The writer holds an exclusive `flock` on its journal while it lives, so recovery (a
non-blocking `flock`) never touches the journal of a live process, and readers tell a running
session (locked) from a crashed one (unlocked: the kernel drops the lock of a dead process, even
after SIGKILL, and a PID reused by another process cannot fool it). Files are 0600, directories
0700. Blocking I/O: call from a worker thread.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson

from tokenomics.config.private_files import open_private, private_dir, write_atomic
from tokenomics.domain.budget import Spend
from tokenomics.domain.ledger import Entry, parse_time
from tokenomics.domain.ledger_session import is_session, session_json

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from pathlib import Path

    Recovered = Callable[[Path], None]  # told the session JSON a recovery wrote

JOURNAL, SESSION = ".journal", ".json"
logger = logging.getLogger("tokenomics.ledger")


def ensure_dir(path: Path) -> None:
    """Create `path` (and parents) with mode 0700, or narrow it to 0700; raises OSError."""
    private_dir(path, owned=True)


def session_bytes(session: Entry) -> bytes:
    return orjson.dumps(session, option=orjson.OPT_INDENT_2)


class Journal:
    """The open, locked journal of the running session."""

    def __init__(self, path: Path, header: Entry) -> None:
        self.path = path
        fd = open_private(path, os.O_WRONLY | os.O_APPEND)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if os.fstat(fd).st_size == 0:
                os.write(fd, orjson.dumps(header) + b"\n")
                os.fsync(fd)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def append(self, lines: list[bytes]) -> None:
        """Append whole lines (to the page cache: a killed process loses none of them; `sync`
        makes them survive a power loss); raises OSError after cutting a partly written batch
        off again, so a retry never duplicates lines."""
        data = b"".join(lines)
        written = os.write(self._fd, data)  # one syscall for a line, unless the disk is full
        if written == len(data):
            return
        size = os.fstat(self._fd).st_size - written
        view = memoryview(data)[written:]
        try:
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, size)
            raise

    def sync(self) -> None:
        os.fsync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # releases the lock
            self._fd = -1


@dataclass
class JournalContent:
    header: Entry
    requests: list[Entry] = field(default_factory=list)
    events: list[Entry] = field(default_factory=list)
    spends: dict[str, Spend] = field(default_factory=dict)  # the last one of each token hash

    def add(self, record: Any) -> None:
        """One journal line after the header (a malformed one is skipped)."""
        if not isinstance(record, dict):
            return
        if isinstance(record.get("git"), dict):
            self.header["git"] = record["git"]
        events = record.get("events")
        if isinstance(events, list):
            self.events.extend(e for e in events if isinstance(e, dict))
        request = record.get("request")
        if not isinstance(request, dict):
            return
        self.requests.append(request)
        spend, key = record.get("spend"), request.get("token_hash")
        if isinstance(spend, dict) and isinstance(key, str) and key:
            tokens, cost = spend.get("tokens"), spend.get("cost_usd")
            if isinstance(tokens, int) and isinstance(cost, int | float):
                self.spends[key] = Spend(max(tokens, 0), max(float(cost), 0.0))


def read_journal(path: Path) -> JournalContent | None:
    """The header and records of a journal; unparseable lines (a truncated last one) skipped.
    None when the header cannot be read."""
    return parse_journal(path.read_bytes())


def parse_journal(data: bytes) -> JournalContent | None:
    """`read_journal` of a journal's bytes."""
    lines = data.split(b"\n")
    try:
        header = orjson.loads(lines[0])
    except orjson.JSONDecodeError:
        return None
    if not isinstance(header, dict) or not isinstance(header.get("session_id"), str):
        return None
    content = JournalContent(header)
    for line in lines[1:]:
        try:
            content.add(orjson.loads(line) if line.strip() else None)
        except orjson.JSONDecodeError:
            continue
    return content


@dataclass(frozen=True, slots=True)
class Abandoned:
    """A journal a crashed process left, read once at start (`abandoned_journals`)."""

    path: Path
    content: JournalContent | None  # None: its header cannot be read
    headless: bool  # no whole line: killed while writing its header, it holds nothing


def build_session(content: JournalContent, ended_at: datetime, git_end: Entry) -> Entry:
    header = content.header
    started = parse_time(header.get("started_at", "")) or ended_at
    git = header["git"] if isinstance(header.get("git"), dict) else {}
    return session_json(
        session_id=header["session_id"], started_at=started, ended_at=max(ended_at, started),
        git={**git, **git_end}, requests=content.requests, events=content.events,
    )  # fmt: skip


def locked_by_other(path: Path) -> bool:
    """A live process holds the journal (this one too, through another open file: flock
    conflicts across open files); raises OSError when it cannot be opened."""
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _complete(path: Path) -> bool:
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return False
    return isinstance(data, dict) and "requests" in data


def abandoned_session(path: Path) -> Entry | None:
    """The session a crashed process left in journal `path`, ended at its last request (or
    the journal's modification time); None when the header is unreadable."""
    return _session_of(read_journal(path), path)


def _session_of(content: JournalContent | None, path: Path) -> Entry | None:
    if content is None:
        return None
    last = parse_time(content.requests[-1].get("timestamp", "")) if content.requests else None
    ended = last or datetime.fromtimestamp(path.stat().st_mtime, UTC)
    return build_session(content, ended, {})


def journal_session(path: Path) -> Entry | None:
    """The session in journal `path` without touching it: a live one up to now, marked
    `"running": true` with its writer's `pid`; a crashed one as `abandoned_session`."""
    if not locked_by_other(path):
        return abandoned_session(path)
    content = read_journal(path)
    if content is None:
        return None
    session = build_session(content, datetime.now(UTC), {})
    pid = content.header.get("pid")
    return {**session, "running": True, **({"pid": pid} if isinstance(pid, int) else {})}


def recover_journal(journal: Abandoned, on_recovered: Recovered | None = None) -> bool:
    """Turn one abandoned journal into its session JSON and remove it (`on_recovered` is given
    the JSON's path); False when it belongs to a live process or cannot be read."""
    path = journal.path
    if locked_by_other(path):
        return False
    target = path.with_suffix(SESSION)
    if not _complete(target):
        session = _session_of(journal.content, path)
        if session is None and journal.headless:
            logger.warning("removed ledger journal %s, cut off in its header", path.name)
            path.unlink()
            return True
        if session is None:
            logger.error("ledger journal %s has no readable header; left in place", path)
            return False
        write_atomic(target, session_bytes(session))
        count = len(session["requests"])
        logger.warning("recovered ledger session %s (%d requests)", path.stem, count)
    path.unlink()
    if on_recovered is not None:
        on_recovered(target)
    return True


def read_sessions(sessions: Path) -> list[Entry]:
    """Every session in `sessions`, by file name: the `*.json` files (unparseable or foreign
    ones skipped) and, read-only, the journals of running sessions and of crashed processes not
    yet recovered (`journal_session`). A missing directory has none."""
    found: dict[str, Entry] = {}
    try:
        paths = sorted(sessions.iterdir())
    except OSError:
        return []
    for path in paths:
        try:
            if path.suffix == SESSION and path.is_file():
                data = orjson.loads(path.read_bytes())
            elif path.suffix == JOURNAL and not path.with_suffix(SESSION).exists():
                data = journal_session(path)
            else:
                continue
        except (OSError, orjson.JSONDecodeError):
            continue
        if is_session(data):
            found[path.stem] = data
    return [found[k] for k in sorted(found)]


def abandoned_journals(sessions: Path) -> list[Abandoned]:
    """The journals of crashed processes in `sessions` (not of live ones), each read once for
    both `abandoned_spends` and `recover_all`. Never raises OSError: a journal that cannot be
    read is logged and kept for the next start."""
    found: list[Abandoned] = []
    for path in sorted(sessions.glob(f"*{JOURNAL}")):
        try:
            if locked_by_other(path):
                continue
            data = path.read_bytes()
        except OSError as exc:
            logger.error("could not recover ledger journal %s: %s", path, exc)
            continue
        found.append(Abandoned(path, parse_journal(data), b"\n" not in data))
    return found


def abandoned_spends(journals: Iterable[Abandoned]) -> dict[str, Spend]:
    """The last budget counter of each token recorded in `journals`, the highest when several
    journals name a token."""
    spends: dict[str, Spend] = {}
    for journal in journals:
        for key, spend in (journal.content.spends if journal.content else {}).items():
            known = spends.get(key, spend)
            spends[key] = Spend(
                max(known.tokens, spend.tokens), max(known.cost_usd, spend.cost_usd)
            )
    return spends


def recover_all(
    sessions: Path,
    on_recovered: Recovered | None = None,
    journals: list[Abandoned] | None = None,
) -> int:
    """Recover every abandoned journal in `sessions` (those of `journals` when they were read
    already); returns how many. Never raises OSError: a journal that cannot be recovered is
    logged and kept for the next start."""
    count = 0
    for journal in abandoned_journals(sessions) if journals is None else journals:
        try:
            count += recover_journal(journal, on_recovered)
        except OSError as exc:
            logger.error("could not recover ledger journal %s: %s", journal.path, exc)
    return count


def events_line(events: list[dict[str, Any]]) -> bytes:
    return orjson.dumps({"events": events}, option=orjson.OPT_APPEND_NEWLINE)
