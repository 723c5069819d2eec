"""The RESP client (`store/resp.py`, `store/resp_wire.py`): the parser on hostile bytes, and a differential test
against coredis (the `redis` extra) on a real redis-server: the same commands give the same
replies."""

from __future__ import annotations

from functools import partial

import coredis
import pytest
import trio
import trio.testing
from tests.support.redis_server import RedisServer, redis_server  # noqa: F401

from tokenomics.domain.errors import RedisUnavailable
from tokenomics.store import resp_wire
from tokenomics.store.resp import RedisAddress, RedisClient
from tokenomics.store.resp_wire import Parser, RespError, encode


def parse_all(data: bytes, step: int = 1) -> list[object]:
    parser, out = Parser(), []
    for i in range(0, len(data), step):
        parser.feed(data[i : i + step])
        while (reply := parser.next()) is not Parser.MORE:
            out.append(reply)
    return out


def test_replies_parse_whatever_the_chunking() -> None:
    data = b"+OK\r\n-ERR bad\r\n:42\r\n$5\r\nhe\r\nl\r\n$-1\r\n*3\r\n:1\r\n*1\r\n$0\r\n\r\n*-1\r\n*0\r\n"
    expected = [b"OK", RespError("ERR bad"), 42, b"he\r\nl", None, [1, [b""], None], []]
    for step in (1, 2, 7, len(data)):
        assert parse_all(data, step) == expected


def test_arrays_of_integers_parse_whole_or_item_by_item_alike() -> None:
    """Arrays of 1 to 4 integers (our scripts' replies) are matched at once; anything else in
    them (a 19-digit number, a bulk string, a fifth item) goes item by item, same result."""
    cases = {
        b"*1\r\n:0\r\n": [0],
        b"*2\r\n:-5\r\n:123456789012345678\r\n": [-5, 123456789012345678],
        b"*2\r\n:1\r\n:9223372036854775807\r\n": [1, 2**63 - 1],
        b"*3\r\n:1\r\n$4\r\nwhat\r\n:5\r\n": [1, b"what", 5],
        b"*4\r\n:2\r\n:1\r\n:3\r\n:4\r\n": [2, 1, 3, 4],
        b"*5\r\n:1\r\n:2\r\n:3\r\n:4\r\n:5\r\n": [1, 2, 3, 4, 5],
        b"*2\r\n:1\r\n*1\r\n:2\r\n": [1, [2]],
        b"*12\r\n" + b":7\r\n" * 12: [7] * 12,
    }
    data = b"".join(cases)
    for step in (1, 3, len(data)):
        assert parse_all(data, step) == list(cases.values())
    with pytest.raises(RedisUnavailable):
        parse_all(b"*2\r\n:1\r\n:99999999999999999999\r\n")  # over the 2**63 bound


@pytest.mark.parametrize(
    "data",
    [
        b"!weird\r\n",
        b"$abc\r\n",
        b"$999999999999\r\n",
        b"*99999999999\r\n",
        b"+" + b"x" * 70000,
        b"$3\r\nabcXY+OK\r\n",  # a bulk string not followed by CRLF: out of step
        b"$-7\r\n",
        b"*-2\r\n",
        b":1_000\r\n",
        b":+7\r\n",
        b": 7\r\n",
        b":-\r\n",
        b":\r\n",
        b":7 \r\n",
        b":\xd9\xa3\r\n",  # a non-ASCII digit
        b"$ 3\r\nabc\r\n",
        b"*1\r\n" * 600 + b":1\r\n",  # nesting that would exhaust the recursion limit
    ],
)
def test_hostile_replies_are_unavailable_errors(data: bytes) -> None:
    with pytest.raises(RedisUnavailable):
        parse_all(data, len(data))


def test_encode_is_resp_arrays_of_bulk_strings() -> None:
    assert encode("SET", b"k", 5, 1.5) == b"*4\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\n5\r\n$3\r\n1.5\r\n"


def bulk(data: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(data), data)


def test_encoding_is_the_same_from_the_cache_and_after_it_is_emptied() -> None:
    """Repeated strings and ints come from a bounded cache: the bytes never change, however
    many distinct ones go through (the cache empties itself when full)."""
    args: list[str | int] = ["é", "x" * 500, -3, 0, 2**70]
    for round_ in range(3):
        for i in range(resp_wire.MAX_CACHED_BULKS + 10):
            assert encode("k", i, f"id{i}") == b"*3\r\n" + bulk(b"k") + bulk(b"%d" % i) + bulk(
                b"id%d" % i
            )
        expected = b"".join(bulk(str(a).encode()) for a in args)
        assert encode(*args) == b"*5\r\n" + expected, round_
        assert len(resp_wire.BULK_CACHE) <= resp_wire.MAX_CACHED_BULKS
    assert encode(True, 1) == b"*2\r\n" + bulk(b"True") + bulk(b"1")


def test_addresses() -> None:
    assert RedisAddress.parse("10.0.0.1:6380") == RedisAddress("10.0.0.1", 6380)
    assert RedisAddress.parse("redis.internal") == RedisAddress("redis.internal", 6379)
    assert RedisAddress.parse("[::1]:7000", "pw", 2) == RedisAddress("::1", 7000, "pw", 2)


COMMANDS: list[tuple[str | int, ...]] = [
    ("SET", "a", "hello"),
    ("GET", "a"),
    ("GET", "missing"),
    ("INCRBY", "n", 5),
    ("RPUSH", "l", "x", "y", "\u00e9"),
    ("LRANGE", "l", 0, -1),
    ("HSET", "h", "f", "1"),
    ("HGETALL", "h"),
    ("EVAL", "return {1, 'two', {3}, redis.call('GET', 'missing')}", 0),
    ("INCR", "a"),  # an error reply
]


async def test_same_replies_as_coredis(redis_server: RedisServer) -> None:  # noqa: F811
    ours = RedisClient(RedisAddress("127.0.0.1", redis_server.port), timeout=2)
    theirs = coredis.Redis(host="127.0.0.1", port=redis_server.port, decode_responses=False)
    mine = [await ours.call(*command) for command in COMMANDS]
    await ours.call("FLUSHALL")
    reference: list[object] = []
    async with theirs:
        reference += [
            await theirs.set("a", "hello"),
            await theirs.get("a"),
            await theirs.get("missing"),
            await theirs.incrby("n", 5),
            await theirs.rpush("l", ["x", "y", "\u00e9"]),
            await theirs.lrange("l", 0, -1),
            await theirs.hset("h", {"f": "1"}),
            await theirs.hgetall("h"),
            await theirs.eval(str(COMMANDS[8][1]), [], []),
        ]
        try:
            await theirs.incr("a")
        except coredis.exceptions.ResponseError as exc:
            reference.append(RespError(f"ERR {exc}"))
    await ours.aclose()

    def norm(value: object) -> object:  # coredis maps some replies to Python types
        if isinstance(value, dict):
            return [x for pair in value.items() for x in pair]
        if isinstance(value, (list, tuple)):
            return [norm(v) for v in value]
        if value is True:
            return b"OK"
        return value

    assert [norm(v) for v in mine[:-1]] == [norm(v) for v in reference[:-1]]
    assert isinstance(mine[-1], RespError) and isinstance(reference[-1], RespError)
    assert mine[-1].message == reference[-1].message


async def test_down_then_back_with_backoff(redis_server: RedisServer) -> None:  # noqa: F811
    client = RedisClient(RedisAddress("127.0.0.1", redis_server.port), timeout=0.5)
    assert await client.call("PING") == b"PONG"
    redis_server.kill()
    with pytest.raises(RedisUnavailable):
        await client.call("PING")
    assert not client.health.up and client.health.errors == 1
    with pytest.raises(RedisUnavailable):  # the circuit is open: refused at once
        await client.call("PING")
    assert client.health.errors == 1
    redis_server.start()
    await trio.sleep(client.health.backoff)
    assert await client.call("PING") == b"PONG"
    assert client.health.up
    await client.aclose()


async def test_a_silent_server_times_out() -> None:
    async def mute(stream: trio.SocketStream) -> None:
        await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(trio.serve_tcp, mute, 0)
        port = listeners[0].socket.getsockname()[1]
        client = RedisClient(RedisAddress("127.0.0.1", port), timeout=0.2)
        with trio.fail_after(2):
            with pytest.raises(RedisUnavailable, match="no answer within 0.2 s"):
                await client.call("PING")
        nursery.cancel_scope.cancel()


async def answer_once_then_mute(stream: trio.SocketStream) -> None:
    """A server that answers the first command (+PONG) and then never again."""
    await stream.receive_some()
    await stream.send_all(b"+PONG\r\n")
    while await stream.receive_some():
        pass


async def test_a_watched_call_on_a_pooled_connection_times_out_without_its_own_scope() -> None:
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(trio.serve_tcp, answer_once_then_mute, 0)
        port = listeners[0].socket.getsockname()[1]
        client = RedisClient(RedisAddress("127.0.0.1", port), timeout=0.2)
        nursery.start_soon(partial(client.watch, tick=0.05))
        assert await client.call("PING") == b"PONG"  # opens the connection: scope path
        with trio.fail_after(2):
            with pytest.raises(RedisUnavailable, match="no answer within 0.2 s"):
                await client.call("PING")  # pooled: only the watch bounds it
        assert client.health.errors == 1 and not client.health.up
        nursery.cancel_scope.cancel()


async def test_watched_calls_reuse_their_connection_and_see_redis_go(
    redis_server: RedisServer,  # noqa: F811
) -> None:
    client = RedisClient(RedisAddress("127.0.0.1", redis_server.port), timeout=0.5)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(client.watch)
        await trio.testing.wait_all_tasks_blocked()
        for _ in range(3):
            assert await client.call("PING") == b"PONG"
        assert await client.execute([["SET", "w", "1"], ["GET", "w"]]) == [b"OK", b"1"]
        assert client.health.calls == 4 and client.health.errors == 0
        redis_server.kill()
        with pytest.raises(RedisUnavailable):
            await client.call("PING")
        assert client.health.errors == 1
        nursery.cancel_scope.cancel()
    await client.aclose()


def connections_received(server: RedisServer) -> int:
    info = server.command("INFO", "stats").decode()
    return int(info.split("total_connections_received:")[1].split("\r\n")[0])


async def test_a_burst_of_calls_keeps_its_connections_for_the_next_one(
    redis_server: RedisServer,  # noqa: F811
) -> None:
    client = RedisClient(RedisAddress("127.0.0.1", redis_server.port), timeout=2)

    async def burst() -> None:
        async with trio.open_nursery() as nursery:
            for _ in range(64):  # at once: each call takes a connection of its own
                nursery.start_soon(client.call, "PING")

    await burst()
    assert client.pooled == 64  # all kept
    opened = connections_received(redis_server)
    await burst()
    assert connections_received(redis_server) == opened + 1  # the INFO above, not ours
    assert client.pooled == 64
    await client.aclose()
