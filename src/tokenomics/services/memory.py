"""Conversation memory: markdown entries of finished exchanges appended to files (D12, D18).

Two independent destinations per exchange:

* ledger memory (`ledger.enabled` and `ledger.memory`): `{dir}/memory/<UTC date>_<session>.md`,
  the date taken at write time (a session crossing midnight continues in a new file), entries
  keyed by the session id, plus event entries when `ledger.event_ledger` is on; no rotation;
* policy memory (the token policy's `memory` block, carried on `Finished.memory`): `file_path`
  (default `~/.tokenomics/memory`, `~` against `home`) with the `file_name` pattern (default
  `{token_hash}.md`), or `file_path` as one shared file when only it is set; entries keyed by
  the token hash's first 16 characters; rotated by size (`cli.md` §7.7).

`MemoryWriter.render` formats a batch without I/O (the ledger flusher calls it on the event
loop) and `write_rendered` appends it, blocking (on the flusher's worker thread); `write` does
both. A disk error does not stop the batch: everything else is written, then the first
`OSError` is raised. Policy memory with `redis: true` goes to Redis (`store/redis_memory.py`)
when `session.backend` is redis; without Redis, or while Redis cannot be reached, it is written
to its file instead (never lost).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from tokenomics.domain.errors import RedisUnavailable
from tokenomics.services.comm_events import communication_events
from tokenomics.services.memory_files import (
    DEFAULT_DIR,
    DEFAULT_PATTERN,
    BadMemoryPath,
    append,
    expand_home,
    limit_bytes,
    pattern_path,
    rotate,
    size_of,
)
from tokenomics.services.memory_format import exchange_entries, redis_entries
from tokenomics.store.redis_memory import RedisMemory
from tokenomics.store.resp import RedisAddress

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from tokenomics.config.settings import Settings
    from tokenomics.domain.policy import MemoryPolicy
    from tokenomics.services.finished import Finished

log = logging.getLogger(__name__)


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Rendered:
    """Entries for one file, ready to append; `limit` (bytes) when the file rotates by size."""

    path: Path
    data: bytes
    limit: int | None = None
    compress: bool = False


@dataclass(frozen=True, slots=True)
class RedisRendered:
    """Policy-memory entries for Redis, with the file entry to write if Redis fails."""

    token_hash: str
    entries: list[str]
    fallback: Rendered


@dataclass(frozen=True, slots=True)
class MemoryStatistics:
    entries_written: int  # exchanges written (to either destination)
    bytes_written: int
    rotations: int
    errors: int


class MemoryWriter:
    """Appends memory entries; one batch at a time (the flusher's thread), not thread-safe."""

    def __init__(
        self,
        *,
        ledger_dir: Path | None,
        events: bool = False,
        home: Path,
        now: Callable[[], datetime] = _utc_now,
        redis: RedisMemory | None = None,
    ) -> None:
        self._ledger_dir = ledger_dir  # None: ledger memory is off
        self._redis = redis
        self._events = events
        self._home = home
        self._now = now
        self._warned: set[str] = set()
        self._closed = False
        self._entries = self._bytes = self._rotations = self._errors = 0

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        home: Path | None = None,
        now: Callable[[], datetime] = _utc_now,
    ) -> MemoryWriter:
        """Always a writer: policy memory is per token, whatever the ledger settings say."""
        ledger = settings.ledger
        on = ledger.enabled and ledger.memory
        redis = None
        if settings.session.backend == "redis":
            options = settings.session.redis
            address = RedisAddress.parse(options.addr, options.password, options.db)
            timeout = max(options.timeout_ms, 1) / 1000
            redis = RedisMemory(address, timeout=timeout, max_entries=options.memory_max_entries)
        return cls(
            ledger_dir=settings.memory_dir if on else None,
            events=on and ledger.event_ledger,
            home=home if home is not None else Path.home(),
            now=now,
            redis=redis,
        )

    def write(self, records: Sequence[Finished], session_id: str) -> None:
        """Append the entries of `records`; raise the first `OSError` after writing the rest."""
        self.write_rendered(self.render(records, session_id))

    def render(
        self, records: Sequence[Finished], session_id: str
    ) -> list[Rendered | RedisRendered]:
        """The entries of `records` by file, without I/O: CPU work the flusher does on the
        event loop, so the thread that writes them holds the GIL only briefly."""
        if self._closed:
            raise RuntimeError("the memory writer is closed")
        ledger: list[str] = []
        out: list[Rendered | RedisRendered] = []
        for record in records:
            if not record.forwarded:
                continue  # nothing was sent upstream: nothing to remember (D12)
            if self._ledger_dir is not None:
                ledger.append(self._ledger_entry(record, session_id))
            if record.memory is not None:
                out.extend(self._policy_entry(record, record.memory))
        if not ledger or self._ledger_dir is None:
            return out
        # One file a day and session: named once a batch (a path per record was 3% of a stream).
        name = f"{self._now().date().isoformat()}_{session_id}.md"
        return [Rendered(self._ledger_dir / name, "".join(ledger).encode()), *out]

    def write_rendered(self, rendered: Sequence[Rendered | RedisRendered]) -> None:
        """Append rendered entries (rotating policy files first); blocking I/O. Raise the first
        `OSError` after writing the rest."""
        errors: list[OSError] = []
        rendered = self._to_redis(rendered)
        for item in rendered:
            if item.limit is not None:
                self._rotate_if_full(item, errors)
            self._append(item.path, item.data, errors)
        if errors:
            raise errors[0]

    def _to_redis(self, rendered: Sequence[Rendered | RedisRendered]) -> list[Rendered]:
        """Push the Redis entries (one pipeline); what Redis refused goes to files."""
        files = [item for item in rendered if isinstance(item, Rendered)]
        for_redis = [item for item in rendered if isinstance(item, RedisRendered)]
        if not for_redis or self._redis is None:
            return files + [item.fallback for item in for_redis]
        batch: dict[str, list[str]] = {}
        for item in for_redis:
            batch.setdefault(item.token_hash, []).extend(item.entries)
        try:
            self._redis.push(batch)
        except RedisUnavailable as exc:
            self._errors += 1
            log.warning("%s; writing those entries to their files", exc.message)
            return files + [item.fallback for item in for_redis]
        self._bytes += sum(len(e.encode()) for entries in batch.values() for e in entries)
        return files

    def close(self) -> None:
        """Nothing stays open between batches; later writes are refused."""
        self._closed = True
        if self._redis is not None:
            self._redis.close()

    def statistics(self) -> MemoryStatistics:
        return MemoryStatistics(self._entries, self._bytes, self._rotations, self._errors)

    # ── internals ────────────────────────────────────────────────────────────────────────────

    def _ledger_entry(self, f: Finished, session_id: str) -> str:
        events = communication_events(f) if self._events else ()
        self._entries += 1
        return exchange_entries(f, session_id, events)

    def _policy_entry(self, f: Finished, memory: MemoryPolicy) -> list[Rendered | RedisRendered]:
        try:
            path = self.policy_path(memory, f.hash16)
        except BadMemoryPath as exc:
            self._warn_once(f"pattern {memory.file_name}", str(exc))
            return []
        self._entries += 1
        data = exchange_entries(f, f.hash16).encode()
        limit = limit_bytes(memory.max_size_mb, memory.compress_old)
        file = Rendered(path, data, limit, memory.compress_old)
        if memory.redis and self._redis is not None:
            return [RedisRendered(f.token_hash, redis_entries(f), file)]
        if memory.redis:
            self._warn_once("redis", "memory.redis needs session.backend: redis; using files")
        return [file]

    def _rotate_if_full(self, item: Rendered, errors: list[OSError]) -> None:
        assert item.limit is not None
        try:
            size = size_of(item.path)
            if size > 0 and size + len(item.data) > item.limit:
                rotate(item.path, self._now(), item.compress)
                self._rotations += 1
        except OSError as exc:
            errors.append(exc)
            self._errors += 1
            log.warning("memory file %s could not be rotated: %s", item.path, exc)

    def policy_path(self, memory: MemoryPolicy, hash16: str) -> Path:
        """The file a policy's memory goes to now (`cli.md` §7.7)."""
        if memory.file_path and not memory.file_name:
            return expand_home(memory.file_path, self._home)
        base = expand_home(memory.file_path or DEFAULT_DIR, self._home)
        return pattern_path(base, memory.file_name or DEFAULT_PATTERN, hash16, self._now())

    def _append(self, path: Path, data: bytes, errors: list[OSError]) -> None:
        try:
            append(path, data)
        except OSError as exc:
            errors.append(exc)
            self._errors += 1
            log.warning("memory file %s could not be written: %s", path, exc)
        else:
            self._bytes += len(data)

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning("%s", message)
