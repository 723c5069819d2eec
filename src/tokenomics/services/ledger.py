"""The session ledger (`cli.md` §7.1, decision D17): one session per server process.

`Ledger.open` (before serving) creates `{dir}/sessions` and recovers journals left by crashed
processes. `run` takes the git context (while the proxy already serves) and creates the journal,
so `tokenomics ledger` lists the live session from then on (`running`: its writer holds the
journal's lock), then consumes
`Finished` records from a channel, gathers them for `BATCH_SECONDS`, formats the batch on the
event loop and appends it to the journal in a worker thread (fsync per batch); memory files are
written in the same thread hop.
When the channel closes or the service is cancelled, a shielded, time-bounded close takes the git
context if it was cut short (a run of under a second still has its branch), writes the session
JSON atomically and removes the journal. A failed write (disk full, unwritable
directory) is logged once per run of failures, counted in `statistics()`, and retried with the
next batch: the proxy never stops or waits on it.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import trio
import trio.lowlevel

from tokenomics.domain.durations import format_rfc3339
from tokenomics.domain.ledger import Entry, EntryValues, request_entry
from tokenomics.services import git_context
from tokenomics.services.ledger_files import (
    JOURNAL,
    SESSION,
    Journal,
    JournalContent,
    build_session,
    ensure_dir,
    read_journal,
    records_line,
    recover_all,
    session_bytes,
    write_atomic,
)

if TYPE_CHECKING:
    from tokenomics.services.finished import Finished

RENDER_SLICE = 8  # records formatted between two checkpoints (about 1 ms of the event loop)
BATCH_SECONDS = 0.2  # records reach the journal within this plus one write (D17: 1 s)
FINAL_FLUSH_SECONDS = 10.0
logger = logging.getLogger("tokenomics.ledger")
EventsOf = Callable[["Finished"], list[dict[str, Any]]]


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


def entry_of(f: Finished) -> Entry:
    usage, meta = f.usage, f.meta
    provider_meta = {
        "cached_input_tokens": usage.cached_input_tokens,
        "cache_creation_tokens": usage.cache_creation_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
        "actual_model": meta.actual_model,
        "finish_reason": meta.finish_reason,
        "rate_limit_remaining_requests": meta.rate_limit_remaining_requests,
        "rate_limit_remaining_tokens": meta.rate_limit_remaining_tokens,
        "rate_limit_reset": meta.rate_limit_reset,
    }
    return request_entry(
        EntryValues(
            recorded_at=f.recorded_at, token_hash=f.token_hash, model=f.model,
            provider=f.provider, input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens, duration_ms=f.duration_ms, status_code=f.status,
            cost_usd=f.cost_usd, stream=f.stream, error=f.error, upstream_id=meta.upstream_id,
            upstream_request_id=meta.upstream_request_id, retry_count=f.retry_count,
            fallback_model=f.fallback_model, rule_matches=f.rule_matches, metadata=f.metadata,
            provider_meta=provider_meta, estimated=usage.estimated, path=f.path,
        )
    )  # fmt: skip


class Ledger:
    """The running session. Its methods with a leading underscore block (worker thread)."""

    def __init__(
        self, sessions: Path | None, cwd: Path, *, events: EventsOf | None = None,
        memory: MemorySink | None = None, now: datetime | None = None,
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
            "git": {},  # filled in by `take_git_context`
            "pid": os.getpid(),  # shown for a running session
        }
        self._git_taken = False
        self._events, self._memory = events, memory
        self._journal: Journal | None = None
        self._incoming: list[Finished] = []  # taken, not yet formatted
        self._memory_pending: list[Any] = []  # memory entries formatted, not yet written
        self._pending: list[tuple[Entry, list[dict[str, Any]]]] = []
        self._recorded = self._errors = 0
        self._failing = False

    @classmethod
    async def open(
        cls, sessions: Path | None, cwd: Path, *, events: EventsOf | None = None,
        memory: MemorySink | None = None,
    ) -> Ledger | None:  # fmt: skip
        """Create the sessions directory and recover crashed sessions. When `sessions` is None
        (ledger off) or cannot be created (logged), the proxy serves without a ledger: the
        result then only writes `memory`, or is None without memory."""
        try:
            if sessions is None:
                return cls(None, cwd, memory=memory) if memory is not None else None
            await trio.to_thread.run_sync(ensure_dir, sessions)
        except OSError as exc:
            logger.error("session ledger disabled: cannot create %s: %s", sessions, exc)
            return await cls.open(None, cwd, memory=memory)
        await trio.to_thread.run_sync(recover_all, sessions)
        return cls(sessions, cwd, events=events, memory=memory)

    async def take_git_context(self) -> None:
        """The git context at the start of the session, for the journal's header. `run` takes
        it once serving has begun (git can take a while in a large repository), before its
        first write, or at close when a short session was stopped before it had it."""
        if self.journaling and not self._git_taken:
            self._header["git"] = await git_context.open_context(self._cwd)
            self._git_taken = True

    @property
    def journal_path(self) -> Path:
        return self.base.with_suffix(JOURNAL)

    @property
    def session_path(self) -> Path:
        return self.base.with_suffix(SESSION)

    def statistics(self) -> LedgerStatistics:
        return LedgerStatistics(
            self.session_id, self._recorded, len(self._pending) + len(self._incoming), self._errors,
            str(self.session_path),
        )  # fmt: skip

    async def write(self, batch: Sequence[Finished]) -> None:
        """Take `batch`, format it on the event loop in slices (yielding between them), then
        append it on a worker thread. The thread then mostly waits on syscalls, which release
        the GIL: formatting there would hold it while requests wait (up to the 5 ms switch
        interval each). Whatever was taken is kept if cancelled midway, for `close`."""
        self._incoming.extend(batch)
        while self._incoming:
            self._render(RENDER_SLICE)
            await trio.lowlevel.checkpoint()
        await trio.to_thread.run_sync(self._write)

    def _render(self, count: int | None = None) -> None:
        taken = self._incoming[:count] if count is not None else self._incoming
        self._incoming = self._incoming[len(taken) :]
        for f in taken if self.journaling else ():
            self._pending.append((entry_of(f), self._events(f) if self._events else []))
        if self._memory is not None and taken:
            self._memory_pending.extend(self._memory.render(taken, self.session_id))

    def _write(self) -> None:
        self._render()  # what a cancellation left unformatted (from `close`)
        if self.journaling and (self._pending or self._journal is None):
            self._flush_pending()  # the first write creates the journal, even with no record
        if self._memory is not None and self._memory_pending:
            rendered, self._memory_pending = self._memory_pending, []
            try:
                self._memory.write_rendered(rendered)
            except OSError as exc:
                logger.error("could not write memory files: %s", exc)

    def _flush_pending(self) -> None:
        try:
            if self._journal is None:
                self._journal = Journal(self.journal_path, self._header)
            self._journal.append([records_line(e, ev) for e, ev in self._pending])
        except OSError as exc:
            self._errors += 1
            if not self._failing:
                logger.error(
                    "session ledger: cannot write %s (%s); keeping %d request(s) in memory and "
                    "retrying with the next request", self.journal_path, exc, len(self._pending),
                )  # fmt: skip
            self._failing = True
            return
        if self._failing:
            logger.warning("session ledger: writing %s again", self.journal_path)
        self._failing = False
        self._recorded += len(self._pending)
        self._pending.clear()

    async def close(self) -> None:
        """Write the session JSON (journal + anything still pending) and remove the journal."""
        git_end = await git_context.close_context(self._cwd) if self.journaling else {}
        await trio.to_thread.run_sync(self._close, datetime.now(UTC), git_end)

    def _close(self, ended_at: datetime, git_end: Entry) -> None:
        if self._incoming or self._memory_pending:
            self._write()
        if not self.journaling:
            if self._memory is not None:
                self._memory.close()
            return
        if self._pending:
            self._flush_pending()
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

    def _content(self) -> JournalContent:
        content = read_journal(self.journal_path) if self._journal is not None else None
        content = content or JournalContent(self._header)
        for entry, events in self._pending:
            content.requests.append(entry)
            content.events.extend(events)
        return content


def _drain(receive: trio.MemoryReceiveChannel[Finished]) -> list[Finished]:
    batch: list[Finished] = []
    while True:
        try:
            batch.append(receive.receive_nowait())
        except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
            return batch


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
        await ledger.write([])  # the journal: the session is listed as running from now on
        async for first in receive:
            gathering.append(first)
            # Let a batch gather: one thread hop and one fsync per batch, not per request.
            await trio.sleep(batch_seconds)
            batch, gathering = [*gathering, *_drain(receive)], []
            await ledger.write(batch)
    finally:
        with trio.move_on_after(final_seconds, shield=True) as scope:
            await ledger.take_git_context()  # when the session ended before it had it
            await ledger.write([*gathering, *_drain(receive)])
            await ledger.close()
        if scope.cancelled_caught:
            logger.error("session ledger: the final write took over %.0f s", final_seconds)
        receive.close()
