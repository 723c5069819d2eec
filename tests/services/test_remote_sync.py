"""The syncer's mirror semantics, its cheap polls, its backoff, and the push debouncer.

The central server is a scripted stand-in for the network (its replies are what the real one
sends: see tests/fleet for the real processes); the store is a real SQLite token store."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from tokenomics.config.settings import RemoteWebhookSettings
from tokenomics.domain.errors import RemoteError
from tokenomics.domain.policy_guard import PolicyGuard
from tokenomics.services.remote_sync import REMOTE, Syncer, SyncState, next_delay, run
from tokenomics.services.remote_webhook import Debouncer, WebhookReceiver, signature_ok
from tokenomics.services.token_cache import TokenCache
from tokenomics.store.tokens import TokenStore
from tokenomics.upstream.remote_http import RemoteReply

POLICY = json.dumps({"base_key_env": "OPENAI_API_KEY"})
A, B, LOCAL = "a" * 64, "b" * 64, "c" * 64


@dataclass
class Central:
    """Answers `GET /api/v1/tokens` like `tokenomics remote`: 304 for the current ETag."""

    tokens: list[dict[str, Any]] = field(default_factory=list)
    version: int = 1
    status: int = 200
    down: bool = False
    calls: list[tuple[float, str]] = field(default_factory=list)

    async def call(
        self, method: str, path: str, *, json: Any = None, etag: str = ""
    ) -> RemoteReply:
        self.calls.append((trio.current_time(), etag))
        if self.down:
            raise RemoteError("cannot reach the central server: ConnectError")
        tag = f'"boot.{self.version}"'
        if self.status != 200:
            return RemoteReply(self.status, "", {"error": "invalid api key"})
        if etag == tag:
            return RemoteReply(304, tag, None)
        return RemoteReply(200, tag, self.tokens)

    def put(self, *tokens: dict[str, Any]) -> None:
        self.tokens, self.version = list(tokens), self.version + 1


def token(token_hash: str, policy: str = POLICY, expires: str | None = None) -> dict[str, Any]:
    item = {"token_hash": token_hash, "policy": policy, "created_at": "2026-01-01T00:00:00Z"}
    return item | ({"expires_at": expires} if expires else {})


GUARD = PolicyGuard.build(["OPENAI_API_KEY"], ["https://api.openai.com"], [],
                          ["TOKENOMICS_HASH_KEY", "TOKENOMICS_ENCRYPTION_KEY"])  # fmt: skip


@pytest.fixture
def store(tmp_path: Path) -> TokenStore:
    return TokenStore.open(tmp_path / "t.db")


def syncer(central: Central, store: TokenStore) -> Syncer:
    cache = TokenCache(store)
    return Syncer(central, store, cache, GUARD, SyncState("http://central"), now=trio.current_time)  # type: ignore[arg-type]


async def test_mirror_creates_updates_clears_expiry_and_deletes_only_remote_tokens(
    store: TokenStore,
) -> None:
    store.create(LOCAL, POLICY, None, "2026-01-01T00:00:00Z")
    central = Central([token(A), token(B, expires="2030-01-01T00:00:00Z")])
    sync = syncer(central, store)
    assert await sync.sync()
    assert store.hashes_of_origin(REMOTE) == {A, B}
    assert sync.cache.lookup(A) is not None and sync.cache.lookup(LOCAL) is not None
    assert store.get(B).expires_at == "2030-01-01T00:00:00Z"

    central.put(token(B))  # A revoked, B's expiry cleared
    assert await sync.sync()
    assert {r.token_hash for r in store.list()} == {B, LOCAL}
    assert store.get(B).expires_at is None
    assert sync.cache.lookup(A) is None  # refused at once, not at the next refresh
    assert sync.state.tokens == 1


async def test_an_unchanged_fleet_costs_one_304_and_changes_nothing(store: TokenStore) -> None:
    central = Central([token(A)])
    sync = syncer(central, store)
    await sync.sync()
    generation = store.generation()
    assert await sync.sync()
    assert central.calls[-1][1] == '"boot.1"' and sync.state.not_modified == 1
    assert store.generation() == generation


async def test_a_failing_central_keeps_the_tokens_and_records_why(store: TokenStore) -> None:
    central = Central([token(A)])
    sync = syncer(central, store)
    await sync.sync()
    central.status = 403
    assert not await sync.sync()
    assert sync.state.failures == 1
    assert sync.state.last_error == "remote server returned 403 Forbidden"
    central.status, central.down = 200, True
    assert not await sync.sync()
    assert sync.state.failures == 2 and store.hashes_of_origin(REMOTE) == {A}


async def test_a_policy_outside_the_allow_list_is_refused_and_not_applied(
    store: TokenStore,
) -> None:
    stealing = json.dumps({"base_key_env": "TOKENOMICS_ENCRYPTION_KEY"})
    elsewhere = json.dumps({"base_key_env": "OPENAI_API_KEY", "upstream_url": "https://x.evil"})
    central = Central([token(A, stealing), token(B, elsewhere), token(LOCAL)])
    sync = syncer(central, store)
    assert await sync.sync()
    assert {r.token_hash for r in store.list()} == {LOCAL}
    assert "TOKENOMICS_ENCRYPTION_KEY is not an allowed key variable" in sync.state.refused[A[:8]]
    assert "x.evil is not an allowed upstream" in sync.state.refused[B[:8]]


async def test_a_token_turning_hostile_is_removed_rather_than_kept_stale(store: TokenStore) -> None:
    central = Central([token(A)])
    sync = syncer(central, store)
    await sync.sync()
    central.put(token(A, json.dumps({"base_key_env": "TOKENOMICS_HASH_KEY"})))
    await sync.sync()
    assert store.list() == []


@pytest.mark.parametrize(
    "listing",
    [{"not": "a list"}, [token("short")], [{"token_hash": A, "policy": 3, "created_at": ""}]],
)
async def test_a_malformed_listing_fails_the_sync_and_changes_nothing(
    store: TokenStore, listing: Any
) -> None:
    central = Central()
    central.tokens = listing
    sync = syncer(central, store)
    assert not await sync.sync()
    assert store.list() == [] and sync.state.last_error


def test_backoff_doubles_from_the_interval_up_to_a_cap() -> None:
    assert [next_delay(10, n) for n in range(6)] == [10, 10, 20, 40, 60, 60]
    assert [next_delay(0, n) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert next_delay(300, 3) == 300
    assert [next_delay(1, n) for n in range(7)] == [1, 1, 2, 4, 8, 10, 10]


async def test_run_syncs_at_start_then_every_interval_backing_off_while_down(
    store: TokenStore, autojump_clock: trio.testing.MockClock
) -> None:
    central = Central([token(A)])
    sync = syncer(central, store)
    await sync.sync()  # known tokens: once back, the central answers 304 (no worker thread)
    central.down = True
    async with trio.open_nursery() as nursery:
        await nursery.start(run, sync, 10.0)
        await trio.sleep(65)
        central.down = False
        await trio.sleep(30)
        nursery.cancel_scope.cancel()
    times = [round(t) for t, _ in central.calls]
    assert times == [0, 0, 10, 30, 70, 80, 90]  # failed at 0, 10, 30 (backing off); ok from 70
    assert sync.state.failures == 0 and store.hashes_of_origin(REMOTE) == {A}


async def test_a_startup_only_sync_retries_until_it_succeeds_once(
    store: TokenStore, autojump_clock: trio.testing.MockClock
) -> None:
    central = Central(down=True)
    sync = syncer(central, store)
    async with trio.open_nursery() as nursery:
        await nursery.start(run, sync, 0.0)
        await trio.sleep(2.5)
        central.down = False
    assert [round(t, 1) for t, _ in central.calls] == [0, 1, 3]  # then it ends by itself


async def test_a_burst_of_pushes_ends_in_exactly_one_sync_after_the_last(
    autojump_clock: trio.testing.MockClock,
) -> None:
    debouncer = Debouncer(0.2)
    ran: list[float] = []

    async def action() -> None:
        ran.append(trio.current_time())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(debouncer.run, action)
        for _ in range(6):  # t = 0 .. 0.5
            debouncer.poke()
            await trio.sleep(0.1)
        await trio.sleep(1.5)
        assert [round(t, 3) for t in ran] == [0.7]
        debouncer.poke()  # t = 2.1, a lone event: its own sync
        await trio.sleep(1)
        nursery.cancel_scope.cancel()
    assert [round(t, 3) for t in ran] == [0.7, 2.3]


def test_signature_matches_the_spec_vector() -> None:
    body = (b'{"id":"evt_00000000000000000000000000000000","type":"token.created",'
            b'"timestamp":"2025-01-15T10:30:00Z","data":{"expires_at":"","token_hash":"abcd1234"}}')  # fmt: skip
    good = "sha256=611f123e2071af6c358fcbc421f3d3ecee695fed2ceaa8d37e2a0a006531f7bd"
    assert signature_ok(b"hmac-key-456", body, good)
    assert signature_ok(b"hmac-key-456", body, good.upper().replace("SHA256", "sha256"))
    assert not signature_ok(b"hmac-key-456", body + b" ", good)
    assert not signature_ok(b"hmac-key-456", body, good[7:])
    assert not signature_ok(b"hmac-key-456", body, "sha256=zz")


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


def _receiver() -> WebhookReceiver:
    settings = RemoteWebhookSettings(enabled=True, secret="s3cret", signing_key="")
    return WebhookReceiver(settings, poke=lambda: None, now=lambda: 0.0)


async def _post(
    receiver: WebhookReceiver, secret: bytes, receive: Any
) -> tuple[int, list[dict[str, Any]]]:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"method": "POST", "headers": [(b"x-webhook-secret", secret)]}
    await receiver(scope, receive, send)
    return sent[0]["status"], sent


async def test_a_webhook_with_the_wrong_secret_is_refused_before_its_body_is_read() -> None:
    async def receive() -> dict[str, Any]:
        raise AssertionError("the body of an unauthenticated sender was read")

    status, _ = await _post(_receiver(), b"wrong", receive)
    assert status == 401


async def test_a_webhook_body_that_never_ends_is_a_408_not_a_held_task(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def receive() -> dict[str, Any]:
        await trio.sleep(5)  # a trickle: a byte every 5 s, never the end
        return {"type": "http.request", "body": b"x", "more_body": True}

    started = trio.current_time()
    status, sent = await _post(_receiver(), b"s3cret", receive)
    assert status == 408
    assert trio.current_time() - started < 60
    assert b"not received in time" in sent[1]["body"]
