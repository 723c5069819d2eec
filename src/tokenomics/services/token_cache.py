"""The in-memory token snapshot the hot path reads, refreshed when the store changes (D4).

Lookups never touch the disk. A refresher task polls SQLite's `data_version` (cheap) and
reloads the snapshot in a worker thread when another connection — the CLI, the admin API,
remote sync — committed a change, so edits are seen within `interval` seconds.
"""

from __future__ import annotations

import hashlib
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


DELETED = "-"


def fingerprint(record: TokenRecord) -> str:
    """What a token's record is, in 16 hex: two stores agree on a token when this matches."""
    text = f"{record.policy_raw}\x00{record.expires_at or ''}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class TokenCache:
    """The snapshot, plus the fleet's view (issue 18): `fleet` maps a token hash to the
    fingerprint another proxy last saw ("-": deleted); a token whose local record differs is
    refused until this store catches up. `take_changes` hands this snapshot's own edits to the
    publisher (`services.revocation`)."""

    def __init__(self, store: TokenStore) -> None:
        self._store = store
        self._records: dict[str, TokenRecord] = {}
        self._prints: dict[str, str] = {}
        self._changes: dict[str, str] = {}
        self.fleet: dict[str, str] = {}
        self._unreadable = 0
        self._version = -1
        self._generation = -1
        self._reloads = 0
        # reload() (startup, tests) and the refresher thread share one connection: one at a
        # time, or a slow stale reload could overwrite a newer snapshot
        self._lock = threading.RLock()

    def lookup(self, token_hash: str) -> TokenRecord | None:
        if self.fleet:
            seen = self.fleet.get(token_hash)
            if seen is not None and seen != self._prints.get(token_hash, DELETED):
                return None  # deleted or edited elsewhere in the fleet
        return self._records.get(token_hash)

    def take_changes(self) -> dict[str, str]:
        """Tokens created, edited or deleted by reloads since the last call: hash -> print."""
        changes, self._changes = self._changes, {}
        return changes

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
            prints = {h: fingerprint(r) for h, r in readable.items()}
            if self._reloads:  # the first load is the baseline, not a change
                gone = {h: DELETED for h in self._prints if h not in prints}
                edited = {h: p for h, p in prints.items() if self._prints.get(h) != p}
                self._changes.update({**gone, **edited})
            self._records, self._prints, self._unreadable = readable, prints, len(broken)
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
