"""The composition root: the only place that starts long-lived tasks (`design.md`); the
stores, clients and dependencies it runs on are built by `app_deps.py`.

    run_server
    ├── consumers nursery (outlive the producers, drain last)
    │   ├── ledger           finished exchanges -> session journal + JSON, memory files
    │   ├── usage_writer     budget counters written through to the store
    │   ├── token refresher  snapshot reloaded when the store changes
    │   ├── event writer     events of finished requests -> the outbox (when webhooks are set)
    │   ├── delivery         outbox -> webhooks: a child process at nice 19, supervised here
    │   │                    (in-process dispatcher, pruning only, when no webhook is set)
    │   ├── redis keeper     (session.backend: redis) sends deferred settles, replays kept ones
    │   ├── revocation       (session.backend: redis) token changes published/heard fleet-wide
    │   └── otlp             spans of finished requests to a collector (when configured)
    └── producers nursery (stopped first on shutdown)
        └── http_server      HTTP/1.1 (our server on llhttp), HTTP and/or HTTPS
"""

from __future__ import annotations

import gc
import secrets
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from tokenomics.app_deps import Parts, now_text, open_ledger, open_parts, open_tokens, restorer
from tokenomics.services import (
    event_writer,
    ledger,
    otlp,
    redis_sync,
    remote_fleet,
    remote_register,
    remote_sync,
    revocation,
    token_cache,
    usage_writer,
)
from tokenomics.services.admin import AdminApp, AdminContext, build_admin
from tokenomics.services.asgi import ProxyApp
from tokenomics.services.events_service import EventServices
from tokenomics.services.finished import Finished
from tokenomics.services.http_server import serve, server_config
from tokenomics.services.ledger_index import LedgerIndexer, open_indexer
from tokenomics.services.recorder import RECORD_QUEUE, Recorder
from tokenomics.services.tls import resolve_tls
from tokenomics.store.redis_counters import RedisCounters

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

    from tokenomics.config.settings import Settings
    from tokenomics.domain.run_budget import RunLimits
    from tokenomics.domain.tokens import HashKey
    from tokenomics.pipeline.deps import Deps
    from tokenomics.services.stats import Stats
    from tokenomics.store.tokens import TokenStore


# The cyclic GC's first threshold while a server runs (Python's default: 700). A request
# allocates a few hundred tracked objects (dicts, lists, frames of coroutines) and almost none
# form cycles; with 64 requests in flight the default ran a young collection every ~15 requests
# and a middle one every ~150: ~7.5% of the proxy's CPU at c=64 (py-spy; 0.107 ms of GC per
# request by gc.callbacks, 118 young collections in 1,835 requests). At 10,000 it runs every
# ~700 requests: 0.008 ms per request, each collection taking a few ms (the latency tail);
# what cyclic garbage waits meanwhile is a few hundred objects. A product decision, made here,
# for the whole process while `run_server` runs, and restored when it returns.
GC_YOUNG_THRESHOLD = 10_000


@contextmanager
def _gc_tuned() -> Iterator[None]:
    previous = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *previous[1:])
    try:
        yield
    finally:
        gc.set_threshold(*previous)


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


async def _start_events(consumers: trio.Nursery, hooks: EventServices, stats: Stats) -> None:
    """Delivery (or pruning) always runs (rows of the CLI); requests hand their records to
    the event writer only when a webhook is configured (`_recorder`)."""
    if hooks.active:
        await consumers.start(event_writer.run, hooks.writer, hooks.receive)
    stats.webhooks = hooks.metric_lines
    await consumers.start(hooks.run)


def open_admin(
    settings: Settings,
    environ: Mapping[str, str],
    server: Server,
    cache: token_cache.TokenCache,
    wake_webhooks: Callable[[], None],
) -> tuple[AdminApp | None, TokenStore | None]:
    """The admin UI/API handler (with its own store connection), None when admin is off."""
    if not settings.admin.enabled:
        return None, None
    store = open_tokens(settings, environ)
    deps = server.deps
    context = AdminContext(
        settings=settings, store=store, refresh_tokens=cache.refresh_if_changed,
        hash_key=deps.hash_key, providers=deps.providers, environ=environ, stats=server.stats,
        spend=deps.budgets.used, urls=lambda: server.urls, session_id=lambda: server.session_id,
        now=deps.now, wake_webhooks=wake_webhooks,
    )  # fmt: skip
    return build_admin(context), store


async def start_fleet(nursery: trio.Nursery, fleet: remote_fleet.Fleet) -> None:
    """The remote syncer (one sync before serving), the push debouncer, the registration."""
    if fleet.syncer is not None:
        await nursery.start(partial(remote_sync.run, fleet.syncer, fleet.interval))
    if fleet.debouncer is not None:
        nursery.start_soon(fleet.debouncer.run, fleet.pushed)
    if fleet.registration is not None:
        await nursery.start(remote_register.run, fleet.registration)


def open_exporter(
    settings: Settings, environ: Mapping[str, str], session: ledger.Ledger | None, cwd: Path
) -> otlp.OtlpExporter | None:
    """The OpenTelemetry exporter, when an endpoint is configured; its run id is the ledger
    session's."""
    run_id = session.session_id if session is not None else secrets.token_hex(4)
    return otlp.open_exporter(settings.otlp, environ, run_id=run_id, cwd=cwd)


def _recorder(
    parts: Parts, session: ledger.Ledger | None, sink: trio.MemorySendChannel[Finished],
    hooks: EventServices, exporter: otlp.OtlpExporter | None,
) -> Recorder:  # fmt: skip
    """Where finished requests go, bound to the consumers that will run: the session journal
    and the ledger's channel, the event writer (webhooks), the span exporter."""
    return Recorder(
        parts.stats, parts.settings.logging, trio.current_time,
        journal=session.record if session is not None and session.journaling else None,
        sink=sink if session is not None else None,
        events=hooks.send if hooks.active else None,
        spans=exporter.offer if exporter is not None else None,
    )  # fmt: skip


async def run_server(
    settings: Settings,
    environ: Mapping[str, str],
    hash_key: HashKey,
    *,
    cwd: Path,
    home: Path | None,
    ephemeral: bool = False,
    run_limits: RunLimits | None = None,
    task_status: trio.TaskStatus[Server] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until `Server.shutdown()` (or cancellation); started with the bound URLs.

    `ephemeral` listens on free ports (the `run` command and tests) instead of the configured ones;
    `run_limits`: the budget of one `tokenomics run` (`domain.run_budget`), on top of the policies.
    """
    with _gc_tuned():
        await _run_server(
            settings, environ, hash_key, cwd=cwd, home=home, ephemeral=ephemeral,
            run_limits=run_limits, task_status=task_status,
        )  # fmt: skip


async def _run_server(
    settings: Settings,
    environ: Mapping[str, str],
    hash_key: HashKey,
    *,
    cwd: Path,
    home: Path | None,
    ephemeral: bool,
    run_limits: RunLimits | None,
    task_status: trio.TaskStatus[Server],
) -> None:
    parts = open_parts(settings, environ, hash_key, cwd=cwd, home=home, run_limits=run_limits)
    cache, stats = parts.cache, parts.stats
    stopped: trio.Event | None = None
    fleet: remote_fleet.Fleet | None = None
    admin_store: TokenStore | None = None
    admin: AdminApp | None = None
    hooks: EventServices | None = None
    indexer: LedgerIndexer | None = None
    try:  # from here on, what was opened is closed however starting ends
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
            reuse_port=server_settings.workers > 1 and not ephemeral,
        )  # fmt: skip
        indexer = (
            open_indexer(Path(settings.storage.db_path), settings.sessions_dir)
            if settings.ledger.enabled else None
        )  # fmt: skip
        hooks = EventServices.open(settings, Path(settings.storage.db_path), environ)
        await trio.to_thread.run_sync(cache.reload)
        restore = redis_sync.restorer(parts.counters, restorer(parts.budgets, parts.usage))
        indexed = indexer.index_file if indexer is not None else None
        session = await open_ledger(settings, cwd, home, restore, indexed)
        exporter = open_exporter(settings, environ, session, cwd)
        send, receive = trio.open_memory_channel[Finished](RECORD_QUEUE)
        deps = parts.deps(_recorder(parts, session, send, hooks, exporter))
        async with trio.open_nursery() as consumers:
            if session is not None:
                stats.ledger = session.statistics if session.journaling else None
                await consumers.start(ledger.run, session, receive)
            await consumers.start(
                partial(usage_writer.run, deps.budgets, parts.usage, clock_now=now_text)
            )
            await consumers.start(token_cache.run, cache)
            await consumers.start(parts.upstreams.run)  # headers timeouts of pooled requests
            fleet = remote_fleet.build(
                settings, deps.providers, partial(open_tokens, settings, environ), cache, stats
            )
            if fleet is not None:
                await start_fleet(consumers, fleet)
            await _start_events(consumers, hooks, stats)
            if isinstance(deps.counters, RedisCounters):
                stats.metric_lines.append(partial(redis_sync.metrics, deps.counters))
                await consumers.start(redis_sync.keep, deps.counters)
                await consumers.start(revocation.run, cache, deps.counters.client)
            if exporter is not None:
                stats.otlp = exporter.statistics
                await consumers.start(exporter.run)
            server = Server([], stats, deps, session)
            stopped = server.stopped
            admin, admin_store = open_admin(settings, environ, server, cache, hooks.wake)
            if admin is not None:  # the ledger and tokens read once before the first page asks
                consumers.start_soon(admin.warm_up)
            app = server.app = ProxyApp(
                deps, stats, trio.current_time, admin=admin,
                webhook=fleet.receiver if fleet is not None else None,
            )  # fmt: skip
            async with trio.open_nursery() as producers:
                server.urls = await producers.start(
                    partial(serve, app, config, shutdown_trigger=server._stop.wait)
                )
                await hooks.server_started(server.urls, settings.server.upstream_url)
                task_status.started(server)
            send.close()  # the ledger drains what is left and writes the session
            hooks.send.close()  # the event writer too; what is not delivered stays queued
            hooks.stop(server_settings.shutdown_grace)
            consumers.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            await parts.upstreams.aclose()
            if fleet is not None:
                await fleet.aclose()
        if hooks is not None:
            await hooks.aclose()
        parts.tokens.close()
        parts.usage.close()
        if indexer is not None:
            indexer.close()
        if admin_store is not None:
            admin_store.close()
        if admin is not None:
            admin.close()
        if stopped is not None:
            stopped.set()
