"""The fleet-wide revocation subscriber (`services/revocation.py`) against a Redis that stops
answering without closing the connection (half-open TCP): it must notice and subscribe again."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest
import trio
import trio.testing
from tests.support.redis_server import RedisServer, redis_server  # noqa: F401

from tokenomics.services import revocation
from tokenomics.services.token_cache import TokenCache
from tokenomics.store.resp import RedisAddress, RedisClient
from tokenomics.store.tokens import TokenStore


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


SUBSCRIBED = b"*3\r\n$9\r\nsubscribe\r\n$17\r\ntokenomics:tokens\r\n:1\r\n"


class SilentRedis:
    """Answers SUBSCRIBE and HGETALL, then never a PING: a connection gone half-open."""

    def __init__(self) -> None:
        self.subscriptions = 0
        self.pings = 0

    async def handle(self, stream: trio.SocketStream) -> None:
        async with stream:
            while data := await stream.receive_some(65536):
                if b"SUBSCRIBE" in data:
                    self.subscriptions += 1
                    await stream.send_all(SUBSCRIBED)
                elif b"HGETALL" in data:
                    await stream.send_all(b"*0\r\n")
                elif b"PING" in data:
                    self.pings += 1  # no answer


async def test_a_subscription_that_goes_silent_is_pinged_and_made_again(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    redis = SilentRedis()
    cache = TokenCache(TokenStore.open(tmp_path / "t.db"))
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, redis.handle, 0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        client = RedisClient(RedisAddress("127.0.0.1", port), timeout=0.5)
        await nursery.start(revocation.run, cache, client)
        await trio.sleep(3 * revocation.KEEPALIVE)
        nursery.cancel_scope.cancel()
    assert redis.pings >= 2
    assert redis.subscriptions >= 3  # each silent PING ended the connection; it subscribed again


async def test_published_prints_older_than_the_retention_are_dropped(
    redis_server: RedisServer,  # noqa: F811
) -> None:
    """The prints hash does not grow for ever: a change older than `keep_ms` goes at the next
    publication (its date forced into the past here: Redis's clock is real time)."""
    client = RedisClient(RedisAddress("127.0.0.1", redis_server.port), timeout=2)
    old, new = "a" * 64, "b" * 64
    assert await revocation.publish(client, {old: "-"}) == 0
    assert old.encode() in redis_server.command("HGETALL", revocation.PRINTS)
    redis_server.command("ZADD", revocation.CHANGED, "1", old)  # long ago
    assert await revocation.publish(client, {new: "0123456789abcdef"}) == 1
    prints = redis_server.command("HGETALL", revocation.PRINTS)
    assert old.encode() not in prints and new.encode() in prints
    assert redis_server.command("ZSCORE", revocation.CHANGED, old).startswith(b"$-1")
    await client.aclose()


async def test_undated_prints_are_dated_then_dropped_after_the_retention(
    redis_server: RedisServer,  # noqa: F811
) -> None:
    """Prints an older proxy wrote without a date (its HSET alone) are dated by the next
    publication, not kept for ever: dropped once that date is past the retention."""
    client = RedisClient(RedisAddress("127.0.0.1", redis_server.port), timeout=2)
    undated = [f"{i:064x}" for i in range(1500)]  # more than one batch of dates
    for name in undated:
        redis_server.command("HSET", revocation.PRINTS, name, "-")
    dated = "c" * 64
    assert await revocation.publish(client, {dated: "-"}) == 0  # dated now: none old yet
    assert redis_server.command("ZCARD", revocation.CHANGED) == b":1501\r\n"
    assert redis_server.command("ZSCORE", revocation.CHANGED, undated[0]) != b"$-1\r\n"
    # a publication past the retention (here a retention of 0 ms) drops them all
    await trio.sleep(0.01)
    dropped = await revocation.publish(client, {"d" * 64: "-"}, keep_ms=1)
    assert dropped == revocation.PRUNE_BATCH  # at most a batch per publication
    dropped += await revocation.publish(client, {"d" * 64: "-"}, keep_ms=1)
    assert dropped == 1501
    assert redis_server.command("HLEN", revocation.PRINTS) == b":1\r\n"
    assert redis_server.command("ZCARD", revocation.CHANGED) == b":1\r\n"
    await client.aclose()
