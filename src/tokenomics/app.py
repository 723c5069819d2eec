"""The composition root: opens stores and clients, builds the dependencies, and is the only
place that starts long-lived tasks (`design.md`).

    run_server
    ├── consumers nursery (outlive the producers, drain last)
    │   ├── ledger           finished exchanges -> session journal + JSON, memory files
    │   ├── usage_writer     budget counters written through to the store
    │   ├── token refresher  snapshot reloaded when the store changes
    │   └── estimator warm-up
    └── producers nursery (stopped first on shutdown)
        └── http_server      HTTP/1.1 (our server on llhttp), HTTP and/or HTTPS
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from tokenomics.config.prices import load_prices
from tokenomics.config.private_files import private_dir
from tokenomics.config.providers import load_providers
from tokenomics.domain.budget import Budgets, Spend
from tokenomics.domain.durations import format_rfc3339
from tokenomics.domain.ratelimit import RateLimiter
from tokenomics.formats.estimate import TokenEstimator
from tokenomics.pipeline.deps import Deps
from tokenomics.services import comm_events, ledger, token_cache, usage_writer
from tokenomics.services.asgi import ProxyApp
from tokenomics.services.finished import Finished
from tokenomics.services.http_server import serve, server_config
from tokenomics.services.memory import MemoryWriter
from tokenomics.services.recorder import RECORD_QUEUE, Recorder
from tokenomics.services.stats import Stats
from tokenomics.services.tls import resolve_tls
from tokenomics.store.db import Database
from tokenomics.store.encryption import Cipher
from tokenomics.store.tokens import TokenStore
from tokenomics.store.usage import UsageStore
from tokenomics.upstream.client import Upstreams

if TYPE_CHECKING:
    from collections.abc import Mapping

    from tokenomics.config.settings import Settings
    from tokenomics.domain.tokens import HashKey


@dataclass
class Server:
    """A running server as seen by `serve`, `run` and the tests."""

    urls: list[str]
    stats: Stats
    deps: Deps
    ledger: ledger.Ledger | None = None  # None when the session ledger is off
    app: ProxyApp | None = None  # once serving
    _stop: trio.Event = field(default_factory=trio.Event)
    stopped: trio.Event = field(default_factory=trio.Event)  # set once everything is flushed

    def shutdown(self) -> None:
        """Stop accepting, let in-flight requests finish (bounded), flush, and return."""
        self._stop.set()

    @property
    def session_id(self) -> str:
        """The ledger session of this process, "" without a ledger."""
        return self.ledger.session_id if self.ledger and self.ledger.journaling else ""


async def open_ledger(
    settings: Settings, cwd: Path, home: Path | None, restore: ledger.Restore
) -> ledger.Ledger | None:
    """The session ledger (recovering crashed sessions first, their spend `restore`d to the
    budget counters) with the memory files; when the ledger is off, a consumer of the memory
    files only."""
    options = settings.ledger
    events = comm_events.communication_events if options.event_ledger else None
    sessions = settings.sessions_dir if options.enabled else None
    memory = MemoryWriter.from_settings(settings, home=home)
    return await ledger.Ledger.open(sessions, cwd, events=events, memory=memory, restore=restore)


def restorer(budgets: Budgets, usage: UsageStore) -> ledger.Restore:
    """Raise the counters to what crashed journals prove, and save them before the journals
    are recovered (and gone): a second crash right after the restart loses nothing either."""

    async def restore(spends: dict[str, Spend]) -> bool:
        budgets.restore(spends)
        return await usage_writer.flush(budgets, usage, _now_text)

    return restore


def _now_text() -> str:
    return format_rfc3339(datetime.now(UTC))


def narrow_data_dir(settings: Settings) -> None:
    """`{dir}` and its `memory/` become 0700 (created, or narrowed when they are wider)."""
    private_dir(settings.data_dir, owned=True)
    if settings.memory_dir.is_dir():
        private_dir(settings.memory_dir, owned=True)


def build_deps(
    settings: Settings,
    environ: Mapping[str, str],
    hash_key: HashKey,
    *,
    cwd: Path,
    home: Path | None,
) -> tuple[Deps, TokenStore, UsageStore, Stats]:
    narrow_data_dir(settings)
    db_path = Path(settings.storage.db_path)
    secret = environ.get(settings.security.encryption_key_env, "")
    cipher = Cipher.from_secret(secret) if secret else None
    tokens = TokenStore.open(db_path, cipher, settings.security.encryption_key_env)
    usage = UsageStore(Database.open(db_path))
    providers = load_providers(
        cwd=cwd, home=home, data_dir=Path(settings.dir), inline=settings.providers
    )
    price_overrides = {m: f for p in providers.values() for m, f in p.prices.items()}
    prices = load_prices(price_overrides)
    stats = Stats(known_model=prices.__contains__)
    deps = Deps(
        settings=settings,
        environ=environ,
        tokens=token_cache.TokenCache(tokens),
        hash_key=hash_key,
        providers=providers,
        limiter=RateLimiter(trio.current_time),
        budgets=Budgets(usage.load()),
        estimator=TokenEstimator(),
        prices=prices,
        upstreams=Upstreams(),
        recorder=Recorder(stats, settings.logging, trio.current_time),
        now=time.time,
    )
    return deps, tokens, usage, stats


async def run_server(
    settings: Settings,
    environ: Mapping[str, str],
    hash_key: HashKey,
    *,
    cwd: Path,
    home: Path | None,
    ephemeral: bool = False,
    task_status: trio.TaskStatus[Server] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until `Server.shutdown()` (or cancellation); started with the bound URLs.

    `ephemeral` listens on free ports (the `run` command and tests) instead of the configured ones.
    """
    deps, tokens, usage, stats = build_deps(settings, environ, hash_key, cwd=cwd, home=home)
    cache = deps.tokens
    assert isinstance(cache, token_cache.TokenCache)
    server_settings = settings.server
    tls = resolve_tls(
        enabled=server_settings.tls.enabled, auto_gen=server_settings.tls.auto_gen,
        cert_dir=Path(server_settings.tls.cert_dir), cert_file=server_settings.tls.cert_file,
        key_file=server_settings.tls.key_file,
        hosts=(server_settings.host, *server_settings.tls.hosts), now=datetime.now(UTC),
    )  # fmt: skip
    config = server_config(
        host=server_settings.host, http_port=server_settings.http_port,
        https_port=server_settings.https_port, tls=tls, grace=server_settings.shutdown_grace,
        idle_timeout=server_settings.idle_timeout, ephemeral=ephemeral,
    )  # fmt: skip
    stopped: trio.Event | None = None
    try:
        await trio.to_thread.run_sync(cache.reload)
        session = await open_ledger(settings, cwd, home, restorer(deps.budgets, usage))
        send, receive = trio.open_memory_channel[Finished](RECORD_QUEUE)
        async with trio.open_nursery() as consumers:
            if session is not None:
                assert isinstance(deps.recorder, Recorder)
                deps.recorder.journal = session.record if session.journaling else None
                deps.recorder.sink = send
                stats.ledger = session.statistics if session.journaling else None
                await consumers.start(ledger.run, session, receive)
            await consumers.start(
                partial(usage_writer.run, deps.budgets, usage, clock_now=_now_text)
            )
            await consumers.start(token_cache.run, cache)
            consumers.start_soon(
                partial(trio.to_thread.run_sync, deps.estimator.warm_up, abandon_on_cancel=True)
            )
            server = Server([], stats, deps, session)
            stopped = server.stopped
            async with trio.open_nursery() as watchers:  # of client disconnects, per request
                app = server.app = ProxyApp(deps, stats, trio.current_time, watchers.start_soon)
                async with trio.open_nursery() as producers:
                    server.urls = await producers.start(
                        partial(serve, app, config, shutdown_trigger=server._stop.wait)
                    )
                    task_status.started(server)
                watchers.cancel_scope.cancel()  # those of requests cut short by the shutdown
            send.close()  # the ledger drains what is left and writes the session
            consumers.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            await deps.upstreams.aclose()
        tokens.close()
        usage.close()
        if stopped is not None:
            stopped.set()
