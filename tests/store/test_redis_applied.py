"""Settles apply once without a key per request (issue 18): each settle is stamped with the
connection that sends it and its number there (`redis_calls.SettleCommand`), and Redis keeps
one small key per connection with the last number applied. Against a real redis-server,
through a relay that can lose the replies (the settle got through, the proxy cannot know) or
the requests (it did not): either way the replay after the outage applies it exactly once."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import trio
from tests.support.redis_server import RedisServer, redis_server  # noqa: F401

from tokenomics.domain.counters import Ask, Outcome
from tokenomics.domain.policy import RateLimit
from tokenomics.store.db import Database
from tokenomics.store.redis_calls import APPLIED
from tokenomics.store.redis_counters import RedisCounters
from tokenomics.store.redis_pending import PendingSettles
from tokenomics.store.resp import RedisAddress, RedisClient

KEY = "ab" * 32
ASK = Ask(10_000, 0.0, 10, 0.0, 20, 0.0)


class Relay:
    """A TCP relay to Redis that may swallow what goes one way."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.lose_requests = False
        self.lose_replies = False

    async def handle(self, client: trio.SocketStream) -> None:
        server = await trio.open_tcp_stream("127.0.0.1", self.port)
        async with client, server, trio.open_nursery() as nursery:
            nursery.start_soon(self._pump, client, server, "lose_requests", nursery.cancel_scope)
            nursery.start_soon(self._pump, server, client, "lose_replies", nursery.cancel_scope)

    async def _pump(
        self, src: trio.SocketStream, dst: trio.SocketStream, lose: str, scope: trio.CancelScope
    ) -> None:
        try:
            while data := await src.receive_some(65536):
                if not getattr(self, lose):
                    await dst.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        scope.cancel()


def used(server: RedisServer) -> int:
    reply = server.command("GET", f"tokenomics:usage:{KEY}")
    return 0 if reply.startswith(b"$-1") else int(reply.split(b"\r\n")[1])


def keys(server: RedisServer, pattern: str) -> list[bytes]:
    reply = server.command("KEYS", pattern)
    return [line for line in reply.split(b"\r\n")[2::2] if line]


async def settle_lost_at_the_relay(
    server: RedisServer, tmp_path: Path, what: str
) -> tuple[RedisCounters, PendingSettles]:
    """Two settles applied, then one whose request or reply the relay loses: it is kept."""
    pending = PendingSettles(Database.open(tmp_path / "t.db"))
    relay = Relay(server.port)
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, relay.handle, 0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        one = RedisCounters(RedisClient(RedisAddress("127.0.0.1", port), timeout=0.5), pending)
        for tokens in (5, 6, 7):
            hold = await one.reserve(KEY, ASK)
            setattr(relay, what, tokens == 7)
            await one.settle(KEY, None, None, hold, Outcome(True, tokens, 0.0))
        await one.client.aclose()
        nursery.cancel_scope.cancel()
    assert one.pending_count == pending.count() == 1
    return one, pending


async def test_a_settle_whose_reply_was_lost_is_not_applied_again(
    redis_server: RedisServer,  # noqa: F811
    tmp_path: Path,
) -> None:
    _, pending = await settle_lost_at_the_relay(redis_server, tmp_path, "lose_replies")
    assert used(redis_server) == 5 + 6 + 7  # it got through; the proxy could not know
    again = RedisCounters(RedisClient(RedisAddress("127.0.0.1", redis_server.port)), pending)
    assert await again.replay() == 1  # taken from the queue...
    assert used(redis_server) == 5 + 6 + 7  # ...and not counted twice
    assert pending.count() == 0
    await again.client.aclose()
    pending.close()


async def test_a_settle_whose_request_was_lost_is_applied_once_by_the_replay(
    redis_server: RedisServer,  # noqa: F811
    tmp_path: Path,
) -> None:
    _, pending = await settle_lost_at_the_relay(redis_server, tmp_path, "lose_requests")
    assert used(redis_server) == 5 + 6 + 30  # the third still holds its reservation (10 + 20)
    again = RedisCounters(RedisClient(RedisAddress("127.0.0.1", redis_server.port)), pending)
    rows = pending.take(10)
    assert await again.replay() == 1
    assert used(redis_server) == 5 + 6 + 7
    for _, row_keys, row_args in rows:  # replayed once more (a replay whose reply was lost)
        await again.run("settle", row_keys, list(row_args))
    assert used(redis_server) == 5 + 6 + 7
    await again.client.aclose()
    pending.close()


async def test_settles_leave_one_key_per_connection_not_one_per_request(
    redis_server: RedisServer,  # noqa: F811
) -> None:
    one = RedisCounters(RedisClient(RedisAddress("127.0.0.1", redis_server.port), timeout=1))
    limit = RateLimit((), max_parallel=4)
    for _ in range(200):
        slot, hold = await one.admit(KEY, limit, ASK)
        await one.settle(KEY, limit, slot, hold, Outcome(True, 1, 0.0))
    assert used(redis_server) == 200
    applied = keys(redis_server, f"{APPLIED}*")
    assert len(applied) == 1  # the one connection's; no `tokenomics:settled:*` either
    assert keys(redis_server, "tokenomics:settled:*") == []
    assert redis_server.command("GET", applied[0].decode()) == b"$3\r\n200\r\n"
    ttl = int(redis_server.command("PTTL", applied[0].decode())[1:-2])
    assert 29 * 86_400_000 < ttl <= 30 * 86_400_000  # expires, a month after its last settle
    await one.client.aclose()


async def test_a_settle_queued_by_the_previous_version_still_replays_once(
    redis_server: RedisServer,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Rows queued before this version carry a marker key of their own and its TTL."""
    pending = PendingSettles(Database.open(tmp_path / "t.db"))
    token = [f"tokenomics:{k}:{KEY}" for k in ("usage", "cost", "holds", "hold_expiry")]
    old_row = ([*token, f"tokenomics:parallel:{KEY}", "tokenomics:settled:abc"],
               ["", "1", "9", "0", "", "604800000", "0"])  # fmt: skip
    pending.add(*old_row)
    pending.add(*old_row)  # the same settle queued twice (kept, then replayed half)
    one = RedisCounters(RedisClient(RedisAddress("127.0.0.1", redis_server.port)), pending)
    assert await one.replay() == 2
    assert used(redis_server) == 9
    await one.client.aclose()
    pending.close()
