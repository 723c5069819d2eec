"""Sliding rate windows in Redis (`store/redis_scripts.py`): a window's hash keeps running sums
('R', 'T') and its oldest kept bucket ('o'), so a call drops only the buckets that left the
window since, instead of reading all 64. These tests seed hashes relative to Redis's own clock
(the scripts' time) with buckets well inside or well outside the window, so a bucket boundary
passing during the test changes nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from tests.support.redis_server import RedisServer, redis_server  # noqa: F401

from tokenomics.domain.errors import RateLimited
from tokenomics.domain.policy import RateLimit, RateRule
from tokenomics.store.redis_counters import RedisCounters
from tokenomics.store.resp import RedisAddress, RedisClient

KEY = "9a" * 32
MINUTE = f"tokenomics:rate:{KEY}:60000:sliding"
HOUR = f"tokenomics:rate:{KEY}:3600000:sliding"
GRAIN_MS = 60_000 / 64
FOUR_A_MINUTE = RateLimit((RateRule(requests=4, window="1m", window_delta=timedelta(minutes=1)),))


def counters(server: RedisServer) -> RedisCounters:
    return RedisCounters(RedisClient(RedisAddress("127.0.0.1", server.port), timeout=2))


def bucket_now(server: RedisServer) -> int:
    """The current bucket of a one-minute window, by Redis's clock."""
    lines = server.command("TIME").split(b"\r\n")  # *2 $n seconds $n microseconds
    now_ms = int(lines[2]) * 1000 + int(lines[4]) // 1000
    return int(now_ms // GRAIN_MS)


def fields(server: RedisServer, key: str) -> dict[bytes, int]:
    lines = server.command("HGETALL", key).split(b"\r\n")[2::2]
    return {lines[i]: int(lines[i + 1]) for i in range(0, len(lines) - 1, 2)}


async def admitted_until_refused(one: RedisCounters, limit: RateLimit) -> RateLimited:
    for _ in range(10):
        try:
            await one.acquire(KEY, limit)
        except RateLimited as exc:
            return exc
    raise AssertionError("never refused")


async def test_a_hash_of_buckets_only_is_summed_once_and_its_old_buckets_dropped(
    redis_server: RedisServer,  # noqa: F811
) -> None:
    now = bucket_now(redis_server)  # as an older version leaves it: buckets, no sums
    redis_server.command(
        "HSET", MINUTE, f"r{now - 75}", "100", f"r{now - 35}", "2", f"r{now - 34}", "1",
        f"t{now - 35}", "50",
    )  # fmt: skip
    one = counters(redis_server)
    refused = await admitted_until_refused(one, FOUR_A_MINUTE)
    assert "4 requests in 1m window (max 4)" in str(refused)  # 3 seeded + 1 admitted
    kept = fields(redis_server, MINUTE)
    assert f"r{now - 75}".encode() not in kept
    assert kept[b"R"] == 4 and kept[b"T"] == 50
    assert int(redis_server.command("PTTL", MINUTE).split(b":")[1]) > 0
    await one.client.aclose()


async def test_buckets_that_left_the_window_since_the_oldest_kept_are_taken_off_the_sums(
    redis_server: RedisServer,  # noqa: F811
) -> None:
    now = bucket_now(redis_server)
    redis_server.command(
        "HSET", MINUTE, "o", str(now - 80), "R", "103", "T", "0", f"r{now - 75}", "100",
        f"r{now - 35}", "3",
    )  # fmt: skip
    one = counters(redis_server)
    refused = await admitted_until_refused(one, FOUR_A_MINUTE)
    assert "4 requests in 1m window (max 4)" in str(refused)
    # the oldest request left is in bucket now - 35: it leaves ~29 buckets from now
    assert 26 < refused.retry_after < 31
    kept = fields(redis_server, MINUTE)
    assert kept[b"R"] == 4 and f"r{now - 75}".encode() not in kept
    assert kept[b"o"] >= now - 65
    await one.client.aclose()


async def test_a_window_first_seen_by_a_refused_admission_still_expires(
    redis_server: RedisServer,  # noqa: F811
) -> None:
    now = bucket_now(redis_server)
    redis_server.command("HSET", MINUTE, f"r{now - 10}", "4")
    two_windows = RateLimit(
        (RateRule(requests=4, window="1m", window_delta=timedelta(minutes=1)),
         RateRule(requests=100, window="1h", window_delta=timedelta(hours=1))),
    )  # fmt: skip
    one = counters(redis_server)
    with pytest.raises(RateLimited, match="4 requests in 1m window"):
        await one.acquire(KEY, two_windows)
    ttl = int(redis_server.command("PTTL", HOUR).split(b":")[1])
    assert ttl == -2 or ttl > 0  # absent, or expiring: never kept forever
    await one.client.aclose()


async def test_a_window_expires_a_grain_after_its_newest_bucket_leaves_it(
    redis_server: RedisServer,  # noqa: F811
) -> None:
    one = counters(redis_server)
    for _ in range(3):  # one PEXPIRE per bucket started, not per call
        await one.acquire(KEY, FOUR_A_MINUTE)
    ttl = int(redis_server.command("PTTL", MINUTE).split(b":")[1])
    assert 55_000 < ttl <= 60_000 + GRAIN_MS + 1
    await one.client.aclose()
