"""Opens the stores and clients and builds the dependencies a server runs on (`Deps`), for
the composition root (`app.py`), which starts the tasks."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from tokenomics.config.prices import load_prices
from tokenomics.config.private_files import private_dir
from tokenomics.config.providers import load_providers
from tokenomics.domain.budget import Budgets, Spend
from tokenomics.domain.durations import format_rfc3339
from tokenomics.domain.ratelimit import RateLimiter
from tokenomics.domain.run_budget import RunBudget, RunLimits
from tokenomics.formats.estimate import TokenEstimator
from tokenomics.pipeline.deps import Deps
from tokenomics.services import comm_events, ledger, redis_sync, token_cache, usage_writer
from tokenomics.services.memory import MemoryWriter
from tokenomics.services.stats import Stats
from tokenomics.store.db import Database
from tokenomics.store.encryption import Cipher
from tokenomics.store.tokens import TokenStore
from tokenomics.store.usage import UsageStore
from tokenomics.upstream.client import Upstreams

if TYPE_CHECKING:
    from collections.abc import Mapping

    from tokenomics.config.providers import ProviderConfig
    from tokenomics.config.settings import Settings
    from tokenomics.domain.counters import Counters
    from tokenomics.domain.pricing import PriceTable
    from tokenomics.domain.tokens import HashKey
    from tokenomics.services.recorder import Recorder


async def open_ledger(
    settings: Settings, cwd: Path, home: Path | None, restore: ledger.Restore,
    indexed: ledger.Indexed | None = None,
) -> ledger.Ledger | None:  # fmt: skip
    """The session ledger (recovering crashed sessions first, their spend `restore`d to the
    budget counters) with the memory files; when the ledger is off, a consumer of the memory
    files only."""
    options = settings.ledger
    events = comm_events.communication_events if options.event_ledger else None
    sessions = settings.sessions_dir if options.enabled else None
    memory = MemoryWriter.from_settings(settings, home=home)
    return await ledger.Ledger.open(
        sessions, cwd, events=events, memory=memory, restore=restore, indexed=indexed
    )


def restorer(budgets: Budgets, usage: UsageStore) -> ledger.Restore:
    """Raise the counters to what crashed journals prove, and save them before the journals
    are recovered (and gone): a second crash right after the restart loses nothing either."""

    async def restore(spends: dict[str, Spend]) -> bool:
        budgets.restore(spends)
        return await usage_writer.flush(budgets, usage, now_text)

    return restore


def now_text() -> str:
    return format_rfc3339(datetime.now(UTC))


def narrow_data_dir(settings: Settings) -> None:
    """`{dir}` and its `memory/` become 0700 (created, or narrowed when they are wider)."""
    private_dir(settings.data_dir, owned=True)
    if settings.memory_dir.is_dir():
        private_dir(settings.memory_dir, owned=True)


def open_tokens(settings: Settings, environ: Mapping[str, str]) -> TokenStore:
    """A connection to the token store (the cache's, or the admin API's own)."""
    secret = environ.get(settings.security.encryption_key_env, "")
    cipher = Cipher.from_secret(secret) if secret else None
    key_env = settings.security.encryption_key_env
    return TokenStore.open(Path(settings.storage.db_path), cipher, key_env)


@dataclass(frozen=True, slots=True)
class Parts:
    """What a server's `Deps` are made of, opened before the record consumers exist (the
    ledger restores `budgets` from crashed journals before it opens); `deps` binds them with
    the recorder once those consumers' channels are known."""

    settings: Settings
    environ: Mapping[str, str]
    hash_key: HashKey
    tokens: TokenStore  # the token cache's connection
    usage: UsageStore
    cache: token_cache.TokenCache
    stats: Stats
    providers: Mapping[str, ProviderConfig]
    prices: PriceTable
    budgets: Budgets
    limiter: RateLimiter
    counters: Counters | None
    run_budget: RunBudget | None
    upstreams: Upstreams
    estimator: TokenEstimator

    def deps(self, recorder: Recorder) -> Deps:
        return Deps(
            settings=self.settings,
            environ=self.environ,
            tokens=self.cache,
            hash_key=self.hash_key,
            providers=self.providers,
            limiter=self.limiter,
            budgets=self.budgets,
            estimator=self.estimator,
            prices=self.prices,
            upstreams=self.upstreams,
            recorder=recorder,
            now=time.time,
            counters=self.counters,
            run_budget=self.run_budget,
        )


def open_parts(
    settings: Settings,
    environ: Mapping[str, str],
    hash_key: HashKey,
    *,
    cwd: Path,
    home: Path | None,
    run_limits: RunLimits | None = None,
) -> Parts:
    narrow_data_dir(settings)
    db_path = Path(settings.storage.db_path)
    tokens = open_tokens(settings, environ)
    usage = UsageStore(Database.open(db_path))
    providers = load_providers(
        cwd=cwd, home=home, data_dir=Path(settings.dir), inline=settings.providers
    )
    price_overrides = {m: f for p in providers.values() for m, f in p.prices.items()}
    prices = load_prices(price_overrides)
    budgets, limiter = Budgets(usage.load()), RateLimiter(trio.current_time)
    return Parts(
        settings=settings, environ=environ, hash_key=hash_key, tokens=tokens, usage=usage,
        cache=token_cache.TokenCache(tokens), stats=Stats(known_model=prices.__contains__),
        providers=providers, prices=prices, budgets=budgets, limiter=limiter,
        counters=redis_sync.build_counters(settings, db_path, budgets, limiter),
        run_budget=_run_budget(run_limits), upstreams=Upstreams(), estimator=TokenEstimator(),
    )  # fmt: skip


def _run_budget(limits: RunLimits | None) -> RunBudget | None:
    """The budget of a `tokenomics run` with limits; None otherwise (`serve`: no check at all)."""
    return RunBudget(limits, trio.current_time) if limits is not None and limits.any else None
