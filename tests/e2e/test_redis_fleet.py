"""Issue 18 through real servers: two proxies (each with its own data directory and token
store) share one real redis-server, so budgets, rate limits and `max_parallel` hold for the
fleet, and Redis going away gives clear 503s, then recovery with no usage lost.

Real time, not the autojump clock: the proxies wait on a real Redis socket.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx2
import trio
from tests.support.mock_upstream import MockUpstream
from tests.support.proxy import Proxy, start_proxy
from tests.support.redis_server import RedisServer, redis_server  # noqa: F401

from tokenomics.domain.durations import format_rfc3339
from tokenomics.domain.tokens import new_token
from tokenomics.store.redis_counters import RedisCounters
from tokenomics.store.tokens import TokenStore

OUTPUT = 220
CONFIG = """providers:
  custom:
    upstream_url: {url}
    api_key_env: OPENAI_KEY
session:
  backend: redis
  redis:
    addr: "{addr}"
    timeout_ms: 300
"""


@asynccontextmanager
async def fleet(
    root: Path, upstream: MockUpstream, redis: RedisServer, size: int = 2
) -> AsyncIterator[list[Proxy]]:
    config = CONFIG.format(url=upstream.url, addr=redis.addr)
    for i in range(size):
        (root / f"p{i}").mkdir()
    async with AsyncExitStack() as stack:
        proxies = [
            await stack.enter_async_context(
                start_proxy(root / f"p{i}", upstream.url, config=config, vocabularies=True)
            )
            for i in range(size)
        ]
        yield proxies


def share_token(proxies: list[Proxy], policy: dict[str, Any]) -> str:
    """One wrapper token, created in every proxy's own store."""
    raw = new_token()
    for proxy in proxies:
        store = TokenStore.open(Path(proxy.settings.storage.db_path))
        try:
            store.create(
                proxy.key.hash(raw), json.dumps(policy), None, format_rfc3339(datetime.now(UTC))
            )
        finally:
            store.close()
        proxy.reload_tokens()
    return raw


def body(model: str, words: int = OUTPUT) -> dict[str, Any]:
    text = " ".join(["word"] * words)
    return {"model": model, "messages": [{"role": "user", "content": text}], "max_tokens": words}


def pending(proxy: Proxy) -> int:
    counters = proxy.server.deps.counters
    return counters.health().pending if counters is not None else 0


def redis_int(redis: RedisServer, key: str) -> int:
    reply = redis.command("GET", key)
    return 0 if reply.startswith(b"$-1") else int(reply.split(b"\r\n")[1])


async def fire(
    proxies: list[Proxy], token: str, count: int, model: str, words: int = OUTPUT
) -> list[httpx2.Response]:
    responses: list[httpx2.Response] = []
    clients = [proxy.client() for proxy in proxies]

    async def one(i: int) -> None:
        response = await clients[i % len(clients)].post(
            "/v1/chat/completions", json=body(model, words), headers={"x-api-key": token}
        )
        responses.append(response)

    async with AsyncExitStack() as stack:
        for client in clients:
            await stack.enter_async_context(client)
        async with trio.open_nursery() as nursery:
            for i in range(count):
                nursery.start_soon(one, i)
    return responses


async def until(done: Callable[[], object]) -> None:
    """Poll state outside this process's control (Redis, files, other servers) until `done`."""
    with trio.fail_after(5):
        while True:
            if done():
                return
            await trio.sleep(0.02)


async def quiet(proxies: list[Proxy]) -> None:
    """Until every proxy finished its requests and Redis has their settles."""
    await until(lambda: not any(proxy.server.stats.in_flight for proxy in proxies))
    await until(lambda: all(_settled(proxy) for proxy in proxies))


def _settled(proxy: Proxy) -> bool:
    counters = proxy.server.deps.counters
    return not isinstance(counters, RedisCounters) or counters.settles.idle


async def test_fifty_requests_on_two_proxies_share_one_budget(
    mock_upstream_server: MockUpstream,
    tmp_path: Path,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    limit = 4000
    async with fleet(tmp_path, mock_upstream_server, redis_server) as proxies:
        token = share_token(
            proxies,
            {"providers": {"custom": [{"base_key_env": "OPENAI_KEY"}]}, "max_tokens": limit},
        )
        responses = await fire(proxies, token, 50, "slow-100-echo")
        await quiet(proxies)
        key = proxies[0].key.hash(token)
    statuses = [r.status_code for r in responses]
    assert statuses.count(200) >= 2 and statuses.count(200) + statuses.count(429) == 50
    assert len(mock_upstream_server.requests) == statuses.count(200)
    spent = redis_int(redis_server, f"tokenomics:usage:{key}")
    actual = sum(r.json()["usage"]["total_tokens"] for r in responses if r.status_code == 200)
    assert spent == actual  # every hold settled to the provider's figures
    assert spent <= limit + OUTPUT  # the fleet overshoots by at most one request's output
    refused = [r.json()["error"]["message"] for r in responses if r.status_code == 429]
    assert all(m.startswith("budget exceeded: used ") for m in refused)


async def test_a_rate_limit_and_max_parallel_hold_across_proxies(
    mock_upstream_server: MockUpstream,
    tmp_path: Path,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    async with fleet(tmp_path, mock_upstream_server, redis_server) as proxies:
        rated = share_token(
            proxies,
            {
                "providers": {"custom": [{"base_key_env": "OPENAI_KEY"}]},
                "rate_limit": {"rules": [{"requests": 5, "window": "1m"}]},
            },
        )
        responses = await fire(proxies, rated, 12, "echo", words=3)
        statuses = [r.status_code for r in responses]
        assert statuses.count(200) == 5 and statuses.count(429) == 7
        refused = next(r for r in responses if r.status_code == 429)
        assert "requests in 1m window (max 5)" in refused.json()["error"]["message"]
        assert 1 <= int(refused.headers["retry-after"]) <= 60

        mock_upstream_server.clear()
        parallel = share_token(
            proxies,
            {
                "providers": {"custom": [{"base_key_env": "OPENAI_KEY"}]},
                "rate_limit": {"max_parallel": 3},
            },
        )
        responses = await fire(proxies, parallel, 10, "slow-300-echo", words=3)
        await quiet(proxies)
    statuses = [r.status_code for r in responses]
    assert mock_upstream_server.max_in_flight <= 3
    assert statuses.count(200) >= 3 and statuses.count(200) + statuses.count(429) == 10
    assert any("concurrent requests (max 3)" in r.text for r in responses if r.status_code == 429)


async def test_redis_killed_mid_load_then_back(
    mock_upstream_server: MockUpstream,
    tmp_path: Path,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    async with fleet(tmp_path, mock_upstream_server, redis_server) as proxies:
        token = share_token(
            proxies,
            {"providers": {"custom": [{"base_key_env": "OPENAI_KEY"}]}, "max_tokens": 100_000},
        )
        key = proxies[0].key.hash(token)
        in_flight: list[httpx2.Response] = []

        async def load() -> None:
            in_flight.extend(await fire(proxies, token, 6, "slow-500-echo", words=5))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(load)
            await until(lambda: len(mock_upstream_server.requests) == 6)  # holds in Redis
            redis_server.kill()  # they finish while Redis is away: their settles wait
        assert [r.status_code for r in in_flight] == [200] * 6
        await quiet(proxies)

        down = await fire(proxies, token, 4, "echo", words=5)
        assert [r.status_code for r in down] == [503] * 4
        error = down[0].json()["error"]
        assert error["code"] == 503 and "unavailable" in error["message"]
        async with proxies[0].client() as client:
            metrics = (await client.get("/metrics")).text
        assert "tokenomics_redis_up 0" in metrics
        errors = next(
            line for line in metrics.splitlines() if line.startswith("tokenomics_redis_e")
        )
        assert int(errors.split()[-1]) >= 1
        assert 'tokenomics_redis_call_seconds_bucket{le="+Inf"}' in metrics
        assert pending(proxies[0]) + pending(proxies[1]) == 6  # the six settles wait
        redis_server.start()  # empty (no persistence): the queued settles rebuild the usage
        await until(lambda: not any(pending(p) for p in proxies))
        back = await fire(proxies, token, 4, "echo", words=5)
        assert [r.status_code for r in back] == [200] * 4
        await quiet(proxies)
    actual = sum(r.json()["usage"]["total_tokens"] for r in (*in_flight, *back))
    assert redis_int(redis_server, f"tokenomics:usage:{key}") == actual


async def test_a_token_deleted_or_edited_on_one_proxy_is_refused_by_the_other_at_once(
    mock_upstream_server: MockUpstream,
    tmp_path: Path,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    policy = {"providers": {"custom": [{"base_key_env": "OPENAI_KEY"}]}}
    async with fleet(tmp_path, mock_upstream_server, redis_server) as (one, other):
        deleted, edited, kept = (share_token([one, other], policy) for _ in range(3))

        async def status(proxy: Proxy, token: str) -> int:
            async with proxy.client() as client:
                response = await client.post(
                    "/v1/chat/completions", json=body("echo", 2), headers={"x-api-key": token}
                )
            return response.status_code

        assert [await status(other, t) for t in (deleted, edited, kept)] == [200, 200, 200]
        store = TokenStore.open(Path(one.settings.storage.db_path))  # like `token delete` on A
        try:
            store.delete(one.key.hash(deleted))
            store.update(one.key.hash(edited), json.dumps({**policy, "max_tokens": 5}), None)
        finally:
            store.close()
        started = trio.current_time()
        with trio.fail_after(1.0):  # A notices its store, publishes; B hears it
            while True:
                if await status(other, deleted) == 401 and await status(other, edited) == 401:
                    break
                await trio.sleep(0.02)
        elapsed = trio.current_time() - started
        assert await status(other, kept) == 200
        assert await status(one, edited) == 429  # A has the new policy: over its new budget
    assert elapsed <= 1.0
    prints = redis_server.command("HGETALL", "tokenomics:tokens:prints")
    assert one.key.hash(deleted).encode() in prints


async def test_policy_memory_goes_to_redis_capped_and_to_files_while_redis_is_away(
    mock_upstream_server: MockUpstream,
    tmp_path: Path,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    files = tmp_path / "mem"
    memory = {
        "enabled": True,
        "redis": True,
        "file_path": str(files),
        "file_name": "{token_hash}.md",
    }
    policy = {"providers": {"custom": [{"base_key_env": "OPENAI_KEY"}]}, "memory": memory}
    config = CONFIG.format(url=mock_upstream_server.url, addr=redis_server.addr)
    config += "    memory_max_entries: 4\n"
    (tmp_path / "p").mkdir()
    async with start_proxy(tmp_path / "p", mock_upstream_server.url, config=config) as proxy:
        token = share_token([proxy], policy)
        key = f"tokenomics:memory:{proxy.key.hash(token)}"
        for words in (1, 2, 3):
            assert [r.status_code for r in await fire([proxy], token, 1, "echo", words)] == [200]
        await until(lambda: redis_server.command("LLEN", key) == b":4\r\n")
        entries = redis_server.command("LRANGE", key, "0", "-1")
        assert b"| request | echo\n\nContent-Type: application/json" in entries
        assert entries.count(b"| response | echo\n\n") == 2  # the first request was trimmed
        redis_server.kill()
        assert [r.status_code for r in await fire([proxy], token, 1, "echo", 2)] == [200]
        fallback = files / f"{proxy.hash16(token)}.md"
        await until(fallback.exists)
        redis_server.start()
    assert "| response | echo" in fallback.read_text()


async def test_rate_limits_may_fail_open_budgets_never_do(
    mock_upstream_server: MockUpstream,
    tmp_path: Path,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    config = CONFIG.format(url=mock_upstream_server.url, addr=redis_server.addr)
    config += "    rate_limit_fail_open: true\n"
    (tmp_path / "p").mkdir()
    async with start_proxy(tmp_path / "p", mock_upstream_server.url, config=config) as proxy:
        provider = {"providers": {"custom": [{"base_key_env": "OPENAI_KEY"}]}}
        rated = share_token([proxy], {**provider, "rate_limit": {"rules": [{"requests": 9}]}})
        budgeted = share_token([proxy], {**provider, "max_tokens": 10_000})
        redis_server.kill()
        assert [r.status_code for r in await fire([proxy], rated, 2, "echo", 2)] == [200, 200]
        assert [r.status_code for r in await fire([proxy], budgeted, 2, "echo", 2)] == [503, 503]
        redis_server.start()
