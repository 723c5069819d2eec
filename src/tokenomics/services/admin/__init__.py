"""The admin UI and JSON API under `/admin` (docs/ADMIN_API.md).

`build_admin` assembles the route table of every API module behind the access rules of
`guard.py`; the result is the ASGI handler the proxy's app hands `/admin…` paths to.
"""

from __future__ import annotations

import logging
from pathlib import Path

import trio

from tokenomics.domain.errors import StoreError
from tokenomics.services.admin import (
    analytics,
    envvars,
    health,
    keys,
    memory_files,
    sessions,
    webhooks,
)
from tokenomics.services.admin.analytics import DEFAULT_TOP
from tokenomics.services.admin.context import AdminContext
from tokenomics.services.admin.guard import Guard
from tokenomics.services.admin.ledger_view import LedgerView
from tokenomics.services.admin.policy_check import routes as policy_routes
from tokenomics.services.admin.router import AdminApp

log = logging.getLogger("tokenomics.admin")


def build_admin(ctx: AdminContext) -> AdminApp:
    settings = ctx.settings
    guard = Guard(
        bind_host=settings.server.host,
        extra_hosts=settings.server.tls.hosts,
        username=settings.admin.auth.username,
        password=settings.admin.auth.password,
    )
    sessions_dir = settings.sessions_dir if settings.ledger.enabled else None
    view = LedgerView.open(Path(settings.storage.db_path), sessions_dir)
    key_routes = keys.Keys(ctx)
    summary = analytics.Analytics(view)

    async def warm_up() -> None:
        """The ledger indexed and summed, the token summaries read, before the first page
        asks."""
        try:
            await trio.to_thread.run_sync(summary.summary, DEFAULT_TOP, abandon_on_cancel=True)
        except StoreError as exc:  # busy or broken: each analytics call tries again
            log.warning("admin: the ledger index was not read at start: %s", exc)
        await key_routes.warm_up()
        ctx.ready = True

    routes = [
        *health.routes(ctx, webhooks=True),
        *keys.routes(key_routes),
        *envvars.routes(ctx),
        *analytics.routes(ctx, summary),
        *sessions.routes(view),
        *memory_files.routes(settings.memory_dir),
        *webhooks.routes(ctx),
    ]
    # the policy editor's check as you type (the UI's)
    routes += policy_routes()
    return AdminApp(guard, routes, warm_up=warm_up, close=view.close)


__all__ = ["AdminApp", "AdminContext", "build_admin"]
