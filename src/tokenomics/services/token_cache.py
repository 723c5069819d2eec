"""The in-memory token snapshot the hot path reads, refreshed when the store changes (D4).

Lookups never touch the disk. A refresher task polls SQLite's `data_version` (cheap) and
reloads the snapshot in a worker thread when another connection — the CLI, the admin API,
remote sync — committed a change, so edits are seen within `interval` seconds.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

import trio

from tokenomics.domain.errors import StoreError

if TYPE_CHECKING:
    from tokenomics.store.tokens import TokenRecord, TokenStore

log = logging.getLogger("tokenomics.tokens")


@dataclass(frozen=True, slots=True)
class TokenCacheStatistics:
    tokens: int
    unreadable: int
    reloads: int


class TokenCache:
    def __init__(self, store: TokenStore) -> None:
        self._store = store
        self._records: dict[str, TokenRecord] = {}
        self._unreadable = 0
        self._version = -1
        self._generation = -1
        self._reloads = 0
        # reload() (startup, tests) and the refresher thread share one connection: one at a
        # time, or a slow stale reload could overwrite a newer snapshot
        self._lock = threading.RLock()

    def lookup(self, token_hash: str) -> TokenRecord | None:
        return self._records.get(token_hash)

    def reload(self) -> None:
        """Read every token (blocking: call from a worker thread once serving)."""
        with self._lock:
            self._version = self._store.db.data_version()
            self._generation = self._store.generation()
            records = self._store.list()
            readable = {r.token_hash: r for r in records if r.policy is not None}
            broken = [r for r in records if r.policy is None]
            for record in broken:
                log.warning("token %s… cannot be used: %s", record.token_hash[:16], record.error)
            self._records, self._unreadable = readable, len(broken)
            self._reloads += 1

    def refresh_if_changed(self) -> bool:
        """Reload when another connection changed the tokens (usage writes do not count)."""
        with self._lock:
            version = self._store.db.data_version()
            if version == self._version:
                return False
            self._version = version
            if self._store.generation() == self._generation:
                return False
            self.reload()
            return True

    def statistics(self) -> TokenCacheStatistics:
        return TokenCacheStatistics(len(self._records), self._unreadable, self._reloads)


async def run(
    cache: TokenCache,
    *,
    interval: float = 0.5,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Refresh the snapshot whenever the store changed, until cancelled."""
    task_status.started()
    while True:
        await trio.sleep(interval)
        try:
            await trio.to_thread.run_sync(cache.refresh_if_changed)
        except StoreError as exc:
            log.warning("could not refresh tokens: %s", exc)
