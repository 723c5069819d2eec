"""The session ledger (`cli.md` §7.1, decision D17): one session per server process.

`Ledger.open` (before serving) creates `{dir}/sessions`, hands the budget counters that
journals of crashed processes prove to `restore`, recovers those journals, and opens the
session's journal. Each finished exchange is journaled by `record`, on the request's own task
right after its response's last byte, with no checkpoint between: one line, one `os.write` to
the page cache (a few µs), so a killed process loses no request whose response completed but
in the microseconds between the two writes (D17 allows 1 s); `tokenomics ledger` lists the live
session from its journal (`running`: its writer holds the journal's lock). `run` takes the git
context (while the proxy already serves), then consumes the `Finished` records from a
channel, gathers them for `BATCH_SECONDS`, renders their memory entries on the event loop
and, in one worker-thread hop, fsyncs the journal and writes the memory files.
When the channel closes or the service is cancelled, a shielded, time-bounded close takes the git
context if it was cut short (a run of under a second still has its branch), writes the
session JSON atomically and removes the journal. A failed write (disk full, unwritable
directory) is logged once per run of failures, counted in `statistics()`, and retried with the
next batch: the proxy never stops or waits on it.
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import orjson
import trio
import trio.lowlevel

from tokenomics.config.private_files import write_atomic
from tokenomics.domain.durations import format_rfc3339
from tokenomics.services import git_context
from tokenomics.services.finished import journal_line
from tokenomics.services.ledger_files import (
    JOURNAL,
    SESSION,
    Journal,
    JournalContent,
    abandoned_journals,
    abandoned_spends,
    build_session,
    ensure_dir,
    events_line,
    read_journal,
    recover_all,
    session_bytes,
)
from tokenomics.services.recorder import drain, gather

if TYPE_CHECKING:
    from tokenomics.domain.budget import Spend
    from tokenomics.domain.ledger import Entry
    from tokenomics.services.finished import Finished

# The event loop's time spent formatting between two checkpoints: the number of records in a
# slice follows what the last slice took (a buffered record ~10 µs, a stream's up to ~150 µs).
RENDER_SECONDS = 0.001
BATCH_SECONDS = 0.2  # memory files are written within this plus one write
BATCH_LIMIT = 256  # a batch is written once it has this many records, however young
FINAL_FLUSH_SECONDS = 10.0
logger = logging.getLogger("tokenomics.ledger")
EventsOf = Callable[["Finished"], list[dict[str, Any]]]
# Raises the budget counters to what crashed journals prove was spent; False: not persisted,
# so those journals stay for the next start.
Restore = Callable[[dict[str, "Spend"]], Awaitable[bool]]
# Told each session JSON written or recovered, on the worker thread (the ledger index).
Indexed = Callable[[Path], None]


class MemorySink(Protocol):
    """Memory files (`services/memory.py`): `render` formats on the event loop (no I/O),
    `write_rendered` appends, blocking, on the worker thread."""

    def render(self, records: Sequence[Finished], session_id: str) -> list[Any]: ...

    def write_rendered(self, rendered: Sequence[Any]) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class LedgerStatistics:
    session_id: str
    requests_recorded: int  # in the journal on disk
    pending: int  # received, waiting for a successful write
    write_errors: int
    session_file: str  # where the session JSON goes at shutdown


class Ledger:
    """The running session. Its methods with a leading underscore block (worker thread), except
    `_append_pending`: every write to the journal happens on the event loop, so a failed batch
    can be cut off again without racing another write."""

    def __init__(
        self, sessions: Path | None, cwd: Path, *, events: EventsOf | None = None,
        memory: MemorySink | None = None, now: datetime | None = None,
        indexed: Indexed | None = None,
    ) -> None:  # fmt: skip
        # Without `sessions` only the memory files are written (the ledger is off).
        self.journaling = sessions is not None
        self.session_id = secrets.token_hex(4)
        self.started_at = (now or datetime.now(UTC)).replace(microsecond=0)
        self.base = (sessions or Path()) / f"{self.started_at:%Y-%m-%d}_{self.session_id}"
        self._cwd = cwd
        self._header: Entry = {
            "session_id": self.session_id,
            "started_at": format_rfc3339(self.started_at),
            "git": {},  # the git context follows in a line of its own (`take_git_context`)
            "pid": os.getpid(),  # shown for a running session
        }
        self._git_taken = False
        self._events, self._memory = events, memory
        self._indexed = indexed
        self._journal: Journal | None = None
        self._incoming: list[Finished] = []  # taken for memory, not yet rendered
        self._memory_pending: list[Any] = []  # memory entries formatted, not yet written
        self._pending: list[bytes] = []  # request lines not written yet (journal failing)
        # Journal lines that are not requests (the git context, the batch's communication
        # events), until written.
        self._notes: list[bytes] = []
        self._unsynced = False  # lines written since the last fsync
        self._slice = 8  # records formatted between two checkpoints (`RENDER_SECONDS`)
        self._recorded = self._errors = 0
        self._failing = self._closed = False

    @classmethod
    async def open(
        cls, sessions: Path | None, cwd: Path, *, events: EventsOf | None = None,
        memory: MemorySink | None = None, restore: Restore | None = None,
        indexed: Indexed | None = None,
    ) -> Ledger | None:  # fmt: skip
        """Create the sessions directory, restore the budget counters crashed journals prove,
        recover those journals and open the new one. When `sessions` is None (ledger off) or
        cannot be created (logged), the proxy serves without a ledger: the result then only
        writes `memory`, or is None without memory."""
        try:
            if sessions is None:
                return cls(None, cwd, memory=memory) if memory is not None else None
            await trio.to_thread.run_sync(ensure_dir, sessions)
        except OSError as exc:
            logger.error("session ledger disabled: cannot create %s: %s", sessions, exc)
            return await cls.open(None, cwd, memory=memory)
        journals = await trio.to_thread.run_sync(abandoned_journals, sessions)
        spends = abandoned_spends(journals)
        if not spends or restore is None or await restore(spends):
            await trio.to_thread.run_sync(recover_all, sessions, indexed, journals)
        ledger = cls(sessions, cwd, events=events, memory=memory, indexed=indexed)
        await trio.to_thread.run_sync(ledger._open_journal)
        return ledger

    async def take_git_context(self) -> None:
        """The git context at the start of the session, journaled in a line of its own. `run`
        takes it once serving has begun (git can take a while in a large repository), or at
        close when a short session was stopped before it had it."""
        if self.journaling and not self._git_taken:
            self._header["git"] = await git_context.open_context(self._cwd)
            self._git_taken = True
            self._notes.append(orjson.dumps({"git": self._header["git"]}) + b"\n")
            self._append_pending()

    @property
    def journal_path(self) -> Path:
        return self.base.with_suffix(JOURNAL)

    @property
    def session_path(self) -> Path:
        return self.base.with_suffix(SESSION)

    def statistics(self) -> LedgerStatistics:
        return LedgerStatistics(
            self.session_id, self._recorded, len(self._pending), self._errors,
            str(self.session_path),
        )  # fmt: skip

    def record(self, f: Finished) -> None:
        """Journal one finished exchange now, on the event loop: its line is in the journal
        file (the page cache; `write` fsyncs in batches) when this returns, unless the journal
        is failing, in which case it waits in memory for the next batch's retry."""
        if self._closed:
            logger.warning("request finished after the session ledger closed; not recorded")
            return
        if self.journaling:
            self._pending.append(journal_line(f))
            if not self._failing:
                self._append_pending()

    def _append_pending(self) -> None:
        lines = [*self._notes, *self._pending] if self._notes else self._pending
        if self._journal is None or not lines:
            return
        try:
            self._journal.append(lines)
        except OSError as exc:
            self._write_failed(exc)
            return
        if self._failing:
            logger.warning("session ledger: writing %s again", self.journal_path)
        self._failing = False
        self._recorded += len(self._pending)
        self._pending.clear()
        self._notes.clear()
        self._unsynced = True

    def _write_failed(self, exc: OSError) -> None:
        self._errors += 1
        if not self._failing:
            logger.error(
                "session ledger: cannot write %s (%s); keeping %d request(s) in memory and "
                "retrying with the next request", self.journal_path, exc, len(self._pending),
            )  # fmt: skip
        self._failing = True

    async def write(self, batch: Sequence[Finished]) -> None:
        """Render the memory entries of `batch` on the event loop in slices (yielding between
        them), retry journal lines a failure kept, then fsync the journal and append the memory
        files in one worker-thread hop. The thread then mostly waits on syscalls, which release
        the GIL: formatting there would hold it while requests wait (up to the 5 ms switch
        interval each). Whatever was taken is kept if cancelled midway, for `close`."""
        self._incoming.extend(batch)
        while self._incoming:
            count, start = self._slice, time.perf_counter()
            self._render(count)
            self._slice = slice_size(count, time.perf_counter() - start)
            await trio.lowlevel.checkpoint()
        if self.journaling and self._journal is None:
            await trio.to_thread.run_sync(self._open_journal)
        self._append_pending()
        await trio.to_thread.run_sync(self._write)

    def _render(self, count: int | None = None) -> None:
        taken = self._incoming[:count] if count is not None else self._incoming
        self._incoming = self._incoming[len(taken) :]
        if self._memory is not None and taken:
            self._memory_pending.extend(self._memory.render(taken, self.session_id))
        # Communication events are batch work too (they re-read whole bodies): journaled in a
        # line of their own, off the request path.
        if self.journaling and self._events is not None and taken:
            events = [event for f in taken for event in self._events(f)]
            if events:
                self._notes.append(events_line(events))

    def _open_journal(self) -> None:
        try:
            self._journal = Journal(self.journal_path, self._header)
        except OSError as exc:
            self._write_failed(exc)

    def _write(self) -> None:
        self._render()  # what a cancellation left unformatted (from `close`)
        if self._journal is not None and self._unsynced:
            self._unsynced = False
            try:
                self._journal.sync()
            except OSError as exc:
                self._unsynced = True
                self._write_failed(exc)
        if self._memory is not None and self._memory_pending:
            rendered, self._memory_pending = self._memory_pending, []
            try:
                self._memory.write_rendered(rendered)
            except OSError as exc:
                logger.error("could not write memory files: %s", exc)

    async def close(self) -> None:
        """Write the session JSON (journal + anything still pending) and remove the journal."""
        git_end = await git_context.close_context(self._cwd) if self.journaling else {}
        self._append_pending()
        self._closed = True
        await trio.to_thread.run_sync(self._close, datetime.now(UTC), git_end)

    def _close(self, ended_at: datetime, git_end: Entry) -> None:
        if self._incoming or self._memory_pending:
            self._write()
        if not self.journaling:
            if self._memory is not None:
                self._memory.close()
            return
        try:
            content = self._content()
            write_atomic(
                self.session_path, session_bytes(build_session(content, ended_at, git_end))
            )
        except OSError as exc:
            self._errors += 1
            kept = "kept for recovery" if self._journal is not None else "lost"
            logger.error("session ledger: cannot write %s (%s); journal %s", self.session_path,
                         exc, kept)  # fmt: skip
            return
        finally:
            if self._journal is not None:
                self._journal.close()
            if self._memory is not None:
                self._memory.close()
        if self._journal is not None:
            self.journal_path.unlink(missing_ok=True)
        if self._indexed is not None:
            self._indexed(self.session_path)

    def _content(self) -> JournalContent:
        content = read_journal(self.journal_path) if self._journal is not None else None
        content = content or JournalContent(dict(self._header))
        content.header["git"] = content.header.get("git") or self._header["git"]
        for line in [*self._notes, *self._pending]:  # never written (the journal kept failing)
            content.add(orjson.loads(line))
        return content


def slice_size(count: int, seconds: float) -> int:
    """The records to format in the next slice, when `count` took `seconds`: about
    `RENDER_SECONDS`, at most twice the last slice, at least one."""
    wanted = count * RENDER_SECONDS / seconds if seconds > 0 else 2 * count
    return max(1, min(2 * count, BATCH_LIMIT, int(wanted)))


async def run(
    ledger: Ledger,
    receive: trio.MemoryReceiveChannel[Finished],
    *,
    final_seconds: float = FINAL_FLUSH_SECONDS,
    batch_seconds: float = BATCH_SECONDS,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Append what arrives, in batches gathered for `batch_seconds`, until the channel closes or
    the task is cancelled, then close the session (shielded, at most `final_seconds`)."""
    task_status.started()
    gathering: list[Finished] = []  # received, not yet handed to the ledger
    try:
        await ledger.take_git_context()
        # one thread hop and one fsync per batch, not per request
        while await gather(receive, gathering, seconds=batch_seconds, limit=BATCH_LIMIT):
            batch, gathering = gathering, []
            await ledger.write(batch)
    finally:
        with trio.move_on_after(final_seconds, shield=True) as scope:
            await ledger.take_git_context()  # when the session ended before it had it
            await ledger.write([*gathering, *drain(receive)])
            await ledger.close()
        if scope.cancelled_caught:
            logger.error("session ledger: the final write took over %.0f s", final_seconds)
        receive.close()
