"""The remote syncer: mirrors the central server's tokens into this proxy's store
(`core.md` §5.5 with its FIX items, D20).

Mirror semantics: a token the central server has is created or updated here (a cleared
expiry is cleared here too) and marked `origin = "remote"`; a remote-origin token the central
server no longer has is deleted here; tokens created locally are never touched. A synced
policy that names a key variable or upstream host outside the allow-list (`PolicyGuard`) is
refused and logged, and not served. The list is fetched with `If-None-Match`: an unchanged
fleet costs one bodiless 304 per poll. When the central server is down the proxy keeps
serving the tokens it has; `state` says how stale they are.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import trio

from tokenomics.domain.errors import PolicyError, RemoteError, TokenomicsError
from tokenomics.domain.policy import parse_policy
from tokenomics.upstream.remote_http import status_text

if TYPE_CHECKING:
    from collections.abc import Callable

    from tokenomics.domain.policy_guard import PolicyGuard
    from tokenomics.services.token_cache import TokenCache
    from tokenomics.store.tokens import TokenRecord, TokenStore
    from tokenomics.upstream.remote_http import RemoteHttp

log = logging.getLogger("tokenomics.remote")
REMOTE = "remote"
_HASH = re.compile(r"[0-9a-f]{64}")
MAX_BACKOFF = 60.0


@dataclass(frozen=True, slots=True)
class RemoteToken:
    token_hash: str
    policy: str
    created_at: str
    expires_at: str | None


@dataclass
class SyncState:
    """What `status`, `doctor` and `/metrics` report; wall-clock seconds, 0 = never."""

    url: str
    last_success: float = 0.0
    last_attempt: float = 0.0
    last_error: str = ""
    failures: int = 0  # consecutive
    syncs: int = 0
    not_modified: int = 0
    refused: dict[str, str] = field(default_factory=dict)  # hash prefix -> why
    tokens: int = 0  # remote-origin tokens served

    def as_dict(self, now: float) -> dict[str, Any]:
        age = round(now - self.last_success, 1) if self.last_success else None
        return {"url": self.url, "last_success": self.last_success, "age_seconds": age,
                "last_attempt": self.last_attempt, "last_error": self.last_error,
                "failures": self.failures, "syncs": self.syncs,
                "not_modified": self.not_modified, "refused": dict(self.refused),
                "tokens": self.tokens}  # fmt: skip

    def prometheus(self, now: float) -> list[str]:
        age = now - self.last_success if self.last_success else -1
        lines = []
        for name, kind, text, value in (
            ("sync_age_seconds", "gauge", "Seconds since the last successful sync (-1: never).",
             round(age, 3)),
            ("sync_failures", "gauge", "Consecutive failed syncs.", self.failures),
            ("syncs", "counter", "Successful syncs (304s included).", self.syncs),
            ("refused_policies", "gauge", "Synced tokens refused by the allow-list.",
             len(self.refused)),
            ("tokens", "gauge", "Tokens mirrored from the central server.", self.tokens),
        ):  # fmt: skip
            metric = f"tokenomics_remote_{name}"
            lines += [f"# HELP {metric} {text}", f"# TYPE {metric} {kind}", f"{metric} {value}"]
        return lines


def parse_listing(body: object) -> list[RemoteToken]:
    """The central server's token list, checked field by field (it is untrusted)."""
    if not isinstance(body, list):
        raise RemoteError("the central server's token list is not a JSON array")
    tokens = []
    for item in body:
        if not isinstance(item, dict):
            raise RemoteError("the central server's token list holds a non-object")
        token_hash, policy = item.get("token_hash"), item.get("policy")
        created, expires = item.get("created_at", ""), item.get("expires_at") or None
        if not isinstance(token_hash, str) or not _HASH.fullmatch(token_hash):
            raise RemoteError("the central server sent a malformed token_hash")
        if not isinstance(policy, str) or not isinstance(created, str):
            raise RemoteError(f"token {token_hash[:8]}…: policy and created_at must be strings")
        if expires is not None and not isinstance(expires, str):
            raise RemoteError(f"token {token_hash[:8]}…: expires_at must be a string")
        tokens.append(RemoteToken(token_hash, policy, created, expires))
    return tokens


class Syncer:
    def __init__(
        self, http: RemoteHttp, store: TokenStore, cache: TokenCache, guard: PolicyGuard,
        state: SyncState, *, now: Callable[[], float], report: Callable[[], None] = lambda: None,
    ) -> None:  # fmt: skip
        """`report` is called after every attempt (the composition root saves `state`)."""
        self.http, self.store, self.cache, self.guard = http, store, cache, guard
        self.state, self._now, self._report = state, now, report
        self._etag = ""
        self._lock = trio.Lock()  # one sync at a time (poll and push may coincide)

    async def sync(self) -> bool:
        """One sync; True when it succeeded. Failures are recorded, never raised."""
        async with self._lock:
            self.state.last_attempt = self._now()
            try:
                await self._sync()
            except TokenomicsError as exc:
                self.state.failures += 1
                self.state.last_error = str(exc)
                log.warning("remote sync failed (%d in a row): %s", self.state.failures, exc)
                return False
            else:
                self.state.failures, self.state.last_error = 0, ""
                self.state.last_success = self._now()
                self.state.syncs += 1
                return True
            finally:
                self._report()

    async def _sync(self) -> None:
        reply = await self.http.call("GET", "/api/v1/tokens", etag=self._etag)
        if reply.status == 304 and self._etag:
            self.state.not_modified += 1
            return
        if reply.status != 200:
            raise RemoteError(status_text(reply.status))
        wanted = parse_listing(reply.body)
        changed = await trio.to_thread.run_sync(self._apply, wanted)
        if changed:
            await trio.to_thread.run_sync(self.cache.reload)
        self._etag = reply.etag

    def _apply(self, wanted: list[RemoteToken]) -> int:
        """Mirror `wanted` into the store (blocking); the number of changes."""
        local = {r.token_hash: r for r in self.store.list()}
        mirrored = self.store.hashes_of_origin(REMOTE)
        keep: set[str] = set()
        refused: dict[str, str] = {}
        changes = 0
        for token in wanted:
            why = self._refusal(token)
            if why:
                refused[token.token_hash[:8]] = why
                continue
            keep.add(token.token_hash)
            try:
                changes += self._put(token, local.get(token.token_hash), mirrored)
            except TokenomicsError as exc:
                log.warning("remote token %s… not applied: %s", token.token_hash[:8], exc)
        for token_hash in sorted(mirrored - keep):
            self.store.delete(token_hash)
            log.info("remote token %s… deleted (gone from the central server)", token_hash[:8])
            changes += 1
        self._report_refusals(refused)
        self.state.tokens = len(keep)
        return changes

    def _refusal(self, token: RemoteToken) -> str:
        try:
            problems = self.guard.violations(parse_policy(token.policy))
        except PolicyError as exc:
            return f"invalid policy: {exc}"
        return "; ".join(problems)

    def _report_refusals(self, refused: dict[str, str]) -> None:
        for prefix, why in refused.items():
            if self.state.refused.get(prefix) != why:
                log.error("remote token %s… refused, not applied: %s", prefix, why)
        self.state.refused = refused

    def _put(self, token: RemoteToken, have: TokenRecord | None, mirrored: set[str]) -> int:
        if have is None:
            self.store.create(
                token.token_hash, token.policy, token.expires_at, token.created_at, REMOTE
            )
            return 1
        changes = 0
        if have.policy_raw != token.policy or have.expires_at != token.expires_at:
            self.store.update(token.token_hash, token.policy, token.expires_at or "clear")
            changes = 1
        if token.token_hash not in mirrored:  # the same token was also created here
            self.store.set_origin(token.token_hash, REMOTE)
        return changes


def next_delay(interval: float, failures: int) -> float:
    """After a success: `interval`. After failures: doubling from the interval (1 s when
    syncing only at start), capped at ten intervals and 60 s, or at one interval when longer:
    a proxy notices soon that the central server is back, without hammering it meanwhile."""
    if failures == 0:
        return interval
    base = interval if interval > 0 else 1.0
    cap = max(interval, min(MAX_BACKOFF, 10 * interval)) if interval > 0 else MAX_BACKOFF
    return min(base * 2.0 ** (failures - 1), cap)


async def run(
    syncer: Syncer, interval: float, *, first_timeout: float = 5.0,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:  # fmt: skip
    """Sync once (bounded) before reporting started, then every `interval` seconds (0: only
    until one sync succeeded), backing off while the central server fails."""
    with trio.move_on_after(first_timeout):
        await syncer.sync()
    task_status.started()
    while interval > 0 or not syncer.state.last_success:
        await trio.sleep(next_delay(interval, syncer.state.failures))
        await syncer.sync()
