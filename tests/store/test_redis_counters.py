"""The Redis counters backend against a real redis-server: the budget and rate-limit rules of
the in-process backend, shared by every client of one Redis (issue 18)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import trio
from tests.support.redis_server import RedisServer, redis_server  # noqa: F401

from tokenomics.domain.counters import Ask, Outcome
from tokenomics.domain.errors import BudgetExceeded, RateLimited, RedisUnavailable
from tokenomics.domain.policy import RateLimit, RateRule
from tokenomics.store.db import Database
from tokenomics.store.redis_counters import RedisClaim, RedisCounters
from tokenomics.store.redis_pending import PendingSettles
from tokenomics.store.resp import RedisAddress, RedisClient

KEY = "ab" * 32


def counters(server: RedisServer, pending: PendingSettles | None = None) -> RedisCounters:
    return RedisCounters(RedisClient(RedisAddress("127.0.0.1", server.port), timeout=1), pending)


def ask(limit: int, tokens: int, output: int = 0) -> Ask:
    return Ask(limit, 0.0, tokens, 0.0, output, 0.0)


async def test_reserve_checks_and_settle_replaces_the_hold(redis_server: RedisServer) -> None:  # noqa: F811
    one = counters(redis_server)
    claim = await one.reserve(KEY, ask(100, 30, output=20))
    assert redis_server.command("GET", f"tokenomics:usage:{KEY}") == b"$2\r\n50\r\n"
    with pytest.raises(BudgetExceeded, match=r"budget exceeded: used 50 \+ input 60 > limit 100"):
        await one.reserve(KEY, ask(100, 60))
    spend = await one.settle(KEY, None, None, claim, Outcome(True, 35, 0.0))
    assert spend is not None and spend.tokens == 35
    released = await one.reserve(KEY, ask(100, 65))  # 35 + 65 == 100 passes
    assert await one.settle(KEY, None, None, released, Outcome(False, 0, 0.0)) is not None
    assert redis_server.command("GET", f"tokenomics:usage:{KEY}") == b"$2\r\n35\r\n"


async def test_a_preseeded_counter_is_what_the_message_says(redis_server: RedisServer) -> None:  # noqa: F811
    redis_server.command("SET", f"tokenomics:usage:{KEY}", "100")
    with pytest.raises(BudgetExceeded, match=r"used 100 \+ input 5 > limit 100"):
        await counters(redis_server).reserve(KEY, ask(100, 5))


async def test_cost_budget(redis_server: RedisServer) -> None:  # noqa: F811
    one = counters(redis_server)
    claim = await one.reserve(KEY, Ask(0, 1.0, 10, 0.6, 0, 0.0))
    with pytest.raises(BudgetExceeded, match=r"cost budget exceeded: used \$0.6 \+ estimated"):
        await one.reserve(KEY, Ask(0, 1.0, 10, 0.5, 0, 0.0))
    spend = await one.settle(KEY, None, None, claim, Outcome(True, 10, 0.25))
    assert spend is not None and spend.cost_usd == pytest.approx(0.25)


async def test_many_clients_overshoot_by_at_most_one_output(redis_server: RedisServer) -> None:  # noqa: F811
    """40 concurrent requests through 4 clients: each input 10, output cap 20, actual 10+20."""
    clients = [counters(redis_server) for _ in range(4)]
    admitted = 0

    async def one(i: int) -> None:
        nonlocal admitted
        try:
            claim = await clients[i % 4].reserve(KEY, ask(200, 10, output=20))
        except BudgetExceeded:
            return
        admitted += 1
        await trio.sleep(0.01)
        await clients[i % 4].settle(KEY, None, None, claim, Outcome(True, 30, 0.0))

    async with trio.open_nursery() as nursery:
        for i in range(40):
            nursery.start_soon(one, i)
    spent = int(redis_server.command("GET", f"tokenomics:usage:{KEY}").split(b"\r\n")[1])
    assert spent == 30 * admitted
    assert spent <= 200 + 20  # the limit plus one request's output
    assert admitted >= 6


async def test_rate_windows_and_parallel_are_shared(redis_server: RedisServer) -> None:  # noqa: F811
    a, b = counters(redis_server), counters(redis_server)
    limit = RateLimit((RateRule(requests=3, window="1m", window_delta=timedelta(minutes=1)),))
    for client in (a, b, a):
        await client.acquire(KEY, limit)
    with pytest.raises(RateLimited, match=r"3 requests in 1m window \(max 3\)") as info:
        await b.acquire(KEY, limit)
    assert 0 < info.value.retry_after <= 60
    fixed = RateLimit(
        (RateRule(tokens=100, window="2s", strategy="fixed", window_delta=timedelta(seconds=2)),)
    )
    slot = await a.acquire("cd" * 32, fixed)
    await a.settle("cd" * 32, fixed, slot, None, Outcome(True, 150, 0.0))
    with pytest.raises(RateLimited, match="150 tokens in 2s window"):
        await b.acquire("cd" * 32, fixed)
    parallel = RateLimit(max_parallel=2)
    slots = [await a.acquire("ef" * 32, parallel), await b.acquire("ef" * 32, parallel)]
    with pytest.raises(RateLimited, match=r"2 concurrent requests \(max 2\)"):
        await a.acquire("ef" * 32, parallel)
    await b.settle("ef" * 32, parallel, slots[0], None, Outcome(False, 0, 0.0))
    await a.acquire("ef" * 32, parallel)


async def test_scripts_are_loaded_again_after_a_flush(redis_server: RedisServer) -> None:  # noqa: F811
    one = counters(redis_server)
    await one.reserve(KEY, ask(100, 1))
    redis_server.command("SCRIPT", "FLUSH")
    await one.reserve(KEY, ask(100, 1))
    assert redis_server.command("GET", f"tokenomics:usage:{KEY}") == b"$1\r\n2\r\n"


async def test_settles_wait_for_redis_and_apply_once(
    redis_server: RedisServer,  # noqa: F811
    tmp_path: Path,
) -> None:
    pending = PendingSettles(Database.open(tmp_path / "t.db"))
    one = counters(redis_server, pending)
    claim = await one.reserve(KEY, ask(1000, 10, output=10))
    redis_server.kill()
    with pytest.raises(RedisUnavailable):
        await one.reserve(KEY, ask(1000, 10))
    assert await one.settle(KEY, None, None, claim, Outcome(True, 40, 0.0)) is None
    assert pending.count() == one.pending_count == 1
    redis_server.start()  # no persistence: the hold is gone, the settle still counts
    await trio.sleep(one.client.health.backoff)
    assert await one.replay() == 1
    assert pending.count() == 0
    assert redis_server.command("GET", f"tokenomics:usage:{KEY}") == b"$2\r\n40\r\n"
    keys, args = one.settle_call(KEY, None, None, RedisClaim(KEY, hold="h1"), Outcome(True, 5, 0))
    await one.run("settle", keys, args)
    await one.run("settle", keys, args)  # a replay of a settle that got through: no effect
    assert redis_server.command("GET", f"tokenomics:usage:{KEY}") == b"$2\r\n45\r\n"
    pending.close()


async def test_a_budget_for_exactly_one_request_admits_one_of_two_proxies(
    redis_server: RedisServer,  # noqa: F811
) -> None:
    """proxy.md scenario 41: two proxies, one Redis, a budget for exactly one request."""
    a, b = counters(redis_server), counters(redis_server)
    outcomes: list[str] = []

    async def one(client: RedisCounters) -> None:
        try:
            await client.reserve(KEY, ask(30, 10, output=20))
        except BudgetExceeded:
            outcomes.append("refused")
        else:
            outcomes.append("admitted")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(one, a)
        nursery.start_soon(one, b)
    assert sorted(outcomes) == ["admitted", "refused"]


def hash_fields(server: RedisServer, key: str) -> list[bytes]:
    reply = server.command("HKEYS", key)  # *n\r\n then $len\r\nfield\r\n per field
    return reply.split(b"\r\n")[2::2]


async def test_a_settle_feeds_tokens_only_to_windows_with_a_token_rule(
    redis_server: RedisServer,  # noqa: F811
) -> None:
    minute = timedelta(minutes=1)
    limit = RateLimit(
        (RateRule(requests=100, window="1m", window_delta=minute),
         RateRule(requests=100, tokens=1000, window="1h", window_delta=timedelta(hours=1))),
    )  # fmt: skip
    one = counters(redis_server)
    for _ in range(2):
        slot, hold = await one.admit(KEY, limit, ask(10_000, 10, output=10))
        assert await one.settle(KEY, limit, slot, hold, Outcome(True, 25, 0.0)) is not None
    by_minute = hash_fields(redis_server, f"tokenomics:rate:{KEY}:60000:sliding")
    by_hour = hash_fields(redis_server, f"tokenomics:rate:{KEY}:3600000:sliding")
    assert any(field.startswith(b"r") for field in by_minute)
    assert not any(field.startswith(b"t") for field in by_minute)  # requests only
    assert any(field.startswith(b"t") for field in by_hour)
    with pytest.raises(RateLimited, match="1000 tokens"):  # the hour's token rule still counts
        for _ in range(40):
            slot, hold = await one.admit(KEY, limit, ask(10_000, 10, output=10))
            await one.settle(KEY, limit, slot, hold, Outcome(True, 25, 0.0))


async def test_a_settle_after_usage_was_lowered_under_its_hold_floors_at_zero(
    redis_server: RedisServer,  # noqa: F811
) -> None:
    one = counters(redis_server)
    claim = await one.reserve(KEY, ask(1000, 30, output=20))
    redis_server.command("SET", f"tokenomics:usage:{KEY}", "10")  # below the hold of 50
    spend = await one.settle(KEY, None, None, claim, Outcome(True, 7, 0.0))
    assert spend is not None and spend.tokens == 7  # max(10 - 50, 0) + 7
    assert redis_server.command("GET", f"tokenomics:usage:{KEY}") == b"$1\r\n7\r\n"
    assert redis_server.command("HMGET", f"tokenomics:holds:{KEY}", "_t", "_n") == (
        b"*2\r\n$1\r\n0\r\n$1\r\n0\r\n"
    )


async def test_a_settle_that_spends_and_holds_nothing_makes_no_usage_key(
    redis_server: RedisServer,  # noqa: F811
) -> None:
    limit = RateLimit((), max_parallel=2)
    one = counters(redis_server)
    slot = await one.acquire(KEY, limit)
    assert await one.settle(KEY, limit, slot, None, Outcome(False, 0, 0.0)) is not None
    assert redis_server.command("EXISTS", f"tokenomics:usage:{KEY}") == b":0\r\n"
    assert redis_server.command("ZCARD", f"tokenomics:parallel:{KEY}") == b":0\r\n"


async def test_large_amounts_are_written_as_exact_integers(
    redis_server: RedisServer,  # noqa: F811
) -> None:
    one = counters(redis_server)
    claim = await one.reserve(KEY, Ask(10**15, 20_000.0, 10**12, 5_000.0, 10**12, 1_000.0))
    assert redis_server.command("GET", f"tokenomics:usage:{KEY}") == b"$13\r\n2000000000000\r\n"
    assert redis_server.command("GET", f"tokenomics:cost:{KEY}") == b"$13\r\n6000000000000\r\n"
    spend = await one.settle(KEY, None, None, claim, Outcome(True, 3 * 10**12, 7_000.0))
    assert spend is not None and spend.tokens == 3 * 10**12
    assert spend.cost_usd == pytest.approx(7_000.0)
    assert redis_server.command("HMGET", f"tokenomics:holds:{KEY}", "_t", "_n") == (
        b"*2\r\n$1\r\n0\r\n$1\r\n0\r\n"
    )


async def test_the_lapsed_hold_of_a_dead_proxy_is_given_back_at_the_next_reservation(
    redis_server: RedisServer,  # noqa: F811
) -> None:
    holds, expiry = f"tokenomics:holds:{KEY}", f"tokenomics:hold_expiry:{KEY}"
    redis_server.command("SET", f"tokenomics:usage:{KEY}", "70")  # 40 spent, 30 held by:
    redis_server.command("HSET", holds, "dead", "30:0", "_t", "30", "_n", "0")
    redis_server.command("ZADD", expiry, "1", "dead")  # expired long ago
    one = counters(redis_server)
    await one.reserve(KEY, ask(1000, 5, output=5))
    assert redis_server.command("GET", f"tokenomics:usage:{KEY}") == b"$2\r\n50\r\n"  # 40 + 10
    assert redis_server.command("HMGET", holds, "dead", "_t") == b"*2\r\n$-1\r\n$2\r\n10\r\n"
    assert redis_server.command("ZCARD", expiry) == b":1\r\n"  # ours
