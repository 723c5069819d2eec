"""The in-memory token snapshot: refreshed on token edits from other connections only."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import trio

from tokenomics.domain.budget import Spend
from tokenomics.services.token_cache import TokenCache, run
from tokenomics.store.db import Database
from tokenomics.store.tokens import TokenRecord, TokenStore
from tokenomics.store.usage import UsageStore

POLICY = '{"base_key_env":"K"}'
CREATED = "2026-01-01T00:00:00Z"


def test_token_edits_reload_and_usage_writes_do_not(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    cache = TokenCache(TokenStore.open(path))
    cache.reload()
    assert cache.lookup("a" * 64) is None and cache.statistics().reloads == 1
    TokenStore.open(path).create("a" * 64, POLICY, None, CREATED)
    assert cache.refresh_if_changed() and cache.lookup("a" * 64) is not None
    UsageStore(Database.open(path)).save({"a" * 64: Spend(10, 0.5)}, CREATED)
    assert not cache.refresh_if_changed() and cache.statistics().reloads == 2
    TokenStore.open(path).delete("a" * 64)
    assert cache.refresh_if_changed() and cache.lookup("a" * 64) is None


def test_unreadable_tokens_are_left_out_and_counted(tmp_path: Path) -> None:
    from tokenomics.store.encryption import Cipher

    path = tmp_path / "t.db"
    TokenStore.open(path, Cipher.from_secret("s")).create("b" * 64, POLICY, None, CREATED)
    cache = TokenCache(TokenStore.open(path))
    cache.reload()
    assert cache.lookup("b" * 64) is None and cache.statistics().unreadable == 1


async def test_refresher_sees_a_new_token_within_its_interval(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    cache = TokenCache(TokenStore.open(path))
    cache.reload()
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: run(cache, interval=0.05, task_status=task_status))
        await trio.to_thread.run_sync(
            lambda: TokenStore.open(path).create("c" * 64, POLICY, None, CREATED)
        )
        with trio.fail_after(5):
            while cache.lookup("c" * 64) is None:  # noqa: ASYNC110 (a thread refreshes it)
                await trio.sleep(0.01)
        nursery.cancel_scope.cancel()


def test_a_slow_refresh_never_overwrites_a_newer_reload(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The refresher thread lists tokens before a new one is committed and is slow to finish;
    a `reload()` made after the commit must still win."""
    path = tmp_path / "t.db"
    store = TokenStore.open(path)
    cache = TokenCache(store)
    cache.reload()
    listed = threading.Event()
    real_list = store.list

    def slow_list() -> list[TokenRecord]:
        records = real_list()
        if threading.current_thread() is not threading.main_thread():
            listed.set()
            time.sleep(0.2)
        return records

    monkeypatch.setattr(store, "list", slow_list)
    TokenStore.open(path).create("a" * 64, POLICY, None, CREATED)
    refresher = threading.Thread(target=cache.refresh_if_changed)
    refresher.start()
    assert listed.wait(5)
    TokenStore.open(path).create("b" * 64, POLICY, None, CREATED)
    cache.reload()
    refresher.join()
    assert cache.lookup("a" * 64) is not None and cache.lookup("b" * 64) is not None
