"""What the admin API needs from the running server, passed in by the composition root."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import trio

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from tokenomics.config.providers import ProviderConfig
    from tokenomics.config.settings import Settings
    from tokenomics.domain.budget import Spend
    from tokenomics.domain.tokens import HashKey
    from tokenomics.services.stats import Stats
    from tokenomics.store.tokens import TokenStore

T = TypeVar("T")


@dataclass
class AdminContext:
    settings: Settings
    store: TokenStore  # a connection of its own, like the CLI's
    refresh_tokens: Callable[[], object]  # makes the proxy see a key write at once (blocking)
    hash_key: HashKey
    providers: Mapping[str, ProviderConfig]
    environ: Mapping[str, str]
    stats: Stats
    spend: Callable[[str], Spend]  # a token's budget counters
    urls: Callable[[], Sequence[str]]
    session_id: Callable[[], str]
    now: Callable[[], float]  # wall clock, seconds since the epoch
    wake_webhooks: Callable[[], None] = lambda: None  # events sent round again: deliver now
    ready: bool = False  # the start-up read of the ledger and the tokens is done
    # one blocking store call at a time, on a worker thread (the connection is shared)
    _store_lock: trio.Lock = field(default_factory=trio.Lock)

    async def in_store(self, work: Callable[..., T], *args: Any) -> T:
        """Run the blocking `work(*args)` against the store on a worker thread."""
        async with self._store_lock:
            return await trio.to_thread.run_sync(work, *args)
