"""The proxy's side of a fleet, built from `remote.*`: the syncer, the inbound webhook with
its debouncer, and the auto-registration. `app.py` starts their tasks; this module only builds
them and keeps the sync state where `status` and `doctor` can read it
(`{dir}/remote_sync.json`)."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import trio

from tokenomics.config.private_files import write_atomic
from tokenomics.domain.policy_guard import PolicyGuard
from tokenomics.services.remote_register import Registration
from tokenomics.services.remote_sync import Syncer, SyncState
from tokenomics.services.remote_webhook import Debouncer, WebhookReceiver
from tokenomics.upstream.remote_http import RemoteHttp

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from pathlib import Path

    from tokenomics.config.providers import ProviderConfig
    from tokenomics.config.settings import Settings
    from tokenomics.services.stats import Stats
    from tokenomics.services.token_cache import TokenCache
    from tokenomics.store.tokens import TokenStore

log = logging.getLogger("tokenomics.remote")
STATE_FILE = "remote_sync.json"


@dataclass
class Fleet:
    interval: float
    http: RemoteHttp | None = None
    syncer: Syncer | None = None
    receiver: WebhookReceiver | None = None
    debouncer: Debouncer | None = None
    registration: Registration | None = None
    cache: TokenCache | None = None
    store: TokenStore | None = None  # the syncer's own connection

    async def pushed(self) -> None:
        """What a pushed event triggers: a sync, or a reload without a central server."""
        if self.syncer is not None:
            await self.syncer.sync()
        elif self.cache is not None:
            await trio.to_thread.run_sync(self.cache.reload)

    async def aclose(self) -> None:
        if self.http is not None:
            await self.http.aclose()
        if self.store is not None:
            self.store.close()


def guard_for(settings: Settings, providers: Mapping[str, ProviderConfig]) -> PolicyGuard:
    remote, security = settings.remote, settings.security
    return PolicyGuard.build(
        key_envs=[*(p.api_key_env for p in providers.values()), *remote.allowed_key_envs],
        upstream_urls=[*(p.upstream_url for p in providers.values()), settings.server.upstream_url],
        hosts=remote.allowed_upstream_hosts,
        forbidden=[security.hash_key_env, security.encryption_key_env],
    )


def save_state(path: Path, state: SyncState) -> None:
    try:
        write_atomic(path, json.dumps(state.as_dict(time.time())).encode())
    except OSError as exc:
        log.warning("cannot write %s: %s", path, exc)


def read_state(data_dir: Path) -> dict[str, Any] | None:
    """The last sync state a proxy saved, None when there is none (or it is unreadable)."""
    try:
        value = json.loads((data_dir / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def build(
    settings: Settings, providers: Mapping[str, ProviderConfig],
    open_store: Callable[[], TokenStore], cache: TokenCache, stats: Stats,
) -> Fleet | None:  # fmt: skip
    """None without `remote.url` and without `remote.webhook.enabled`."""
    remote = settings.remote
    if not remote.url and not remote.webhook.enabled:
        return None
    fleet = Fleet(float(remote.sync), cache=cache)
    if remote.url:
        store = fleet.store = open_store()
        fleet.http = RemoteHttp(remote.url, remote.api_key, insecure=remote.insecure)
        state = SyncState(remote.url.split("?", 1)[0])
        path = settings.data_dir / STATE_FILE
        fleet.syncer = Syncer(
            fleet.http, store, cache, guard_for(settings, providers), state, now=time.time,
            report=lambda: save_state(path, state),
        )  # fmt: skip
        stats.sections["remote"] = lambda: state.as_dict(time.time())
        stats.metric_lines.append(lambda: state.prometheus(time.time()))
        webhook = remote.webhook
        if webhook.auto_register and webhook.callback_url:
            fleet.registration = Registration(fleet.http, webhook)
    if remote.webhook.enabled:
        if not remote.webhook.secret and not remote.webhook.signing_key:
            log.warning(
                "remote.webhook has neither secret nor signing_key: anyone who can reach "
                "%s can trigger syncs; set remote.webhook.signing_key",
                remote.webhook.path,
            )
        fleet.debouncer = Debouncer(remote.webhook.debounce_ms / 1000)
        fleet.receiver = WebhookReceiver(remote.webhook, fleet.debouncer.poke, time.time)
    return fleet


def describe_state(state: dict[str, Any] | None, now: float) -> tuple[Literal["ok", "warn"], str]:
    """("ok" | "warn", one line) about the last sync a proxy saved, for `status`/`doctor`."""
    if state is None:
        return "warn", "no sync recorded yet (the proxy has not run with remote.url)"
    last = state.get("last_success") or 0
    failures = state.get("failures") or 0
    age = f"{now - float(last):.0f}s ago" if last else "never"
    refused = state.get("refused") or {}
    extra = f"; {len(refused)} synced token(s) refused by the allow-list" if refused else ""
    if failures:
        error = str(state.get("last_error", ""))[:200]
        return "warn", f"last good sync {age}; {failures} failure(s) since: {error}{extra}"
    return ("warn" if refused else "ok"), f"last good sync {age}{extra}"
