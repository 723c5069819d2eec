"""Settles off the request's path (`store.redis_settles`) against a real redis-server: while
the flusher runs, a settle is queued and returns at once; the next admission carries it in the
same pipeline, ahead of its own script (so Redis frees the slot first); what no admission
carried is sent by the flusher, and what Redis does not take waits in SQLite for `replay`."""

from __future__ import annotations

import socket
from datetime import timedelta
from pathlib import Path

import pytest
import trio
import trio.testing
from tests.e2e.test_redis_fleet import until
from tests.support.redis_server import RedisServer, redis_server  # noqa: F401
from trio.testing import wait_all_tasks_blocked

from tokenomics.domain.budget import Spend
from tokenomics.domain.counters import Ask, Outcome
from tokenomics.domain.errors import RateLimited, RedisUnavailable
from tokenomics.domain.policy import RateLimit, RateRule
from tokenomics.services.redis_sync import flush_settles
from tokenomics.store.db import Database
from tokenomics.store.redis_calls import settles_could_free
from tokenomics.store.redis_counters import RedisCounters
from tokenomics.store.redis_pending import PendingSettles
from tokenomics.store.redis_settles import PATIENCE
from tokenomics.store.resp import RedisAddress, RedisClient

KEY = "cd" * 32


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


ONE_AT_A_TIME = RateLimit(
    (RateRule(requests=1000, window="1m", window_delta=timedelta(minutes=1)),), max_parallel=1
)
ASK = Ask(10_000, 0.0, 10, 0.0, 20, 0.0)


def counters(server: RedisServer, pending: PendingSettles | None = None) -> RedisCounters:
    return RedisCounters(RedisClient(RedisAddress("127.0.0.1", server.port), timeout=1), pending)


def used(server: RedisServer) -> int:
    reply = server.command("GET", f"tokenomics:usage:{KEY}")
    return 0 if reply.startswith(b"$-1") else int(reply.split(b"\r\n")[1])


def evalshas(server: RedisServer) -> int:
    for line in server.command("INFO", "commandstats").decode().splitlines():
        if line.startswith("cmdstat_evalsha:"):
            return int(line.split("calls=")[1].split(",")[0])
    return 0


async def test_the_next_admission_carries_the_settle_ahead_of_itself(
    redis_server: RedisServer,  # noqa: F811
) -> None:
    one = counters(redis_server)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: flush_settles(one, linger=3600))  # never on its own here
        await wait_all_tasks_blocked()
        slot, hold = await one.admit(KEY, ONE_AT_A_TIME, ASK)
        spend = await one.settle(KEY, ONE_AT_A_TIME, slot, hold, Outcome(True, 25, 0.0))
        assert spend is not None and spend.tokens == 25  # this proxy's lower bound
        assert len(one.settles.queue) == 1 and used(redis_server) == 30  # not sent yet
        redis_server.command("CONFIG", "RESETSTAT")
        # max_parallel 1: admitted only because the settle went first and freed the slot
        slot, hold = await one.admit(KEY, ONE_AT_A_TIME, ASK)
        assert evalshas(redis_server) == 2 and one.settles.idle
        assert used(redis_server) == 25 + 30
        await one.settle(KEY, ONE_AT_A_TIME, slot, hold, Outcome(True, 5, 0.0))
        nursery.cancel_scope.cancel()  # the flusher sends what is left as it stops
    assert one.settles.idle and not one.settles.deferred
    assert used(redis_server) == 30
    assert one.settles.known[KEY].tokens == 30  # raised by the reply
    await one.client.aclose()


async def test_the_flusher_sends_a_settle_no_admission_carried(
    redis_server: RedisServer,  # noqa: F811
) -> None:
    one = counters(redis_server)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: flush_settles(one, linger=0.001))
        await wait_all_tasks_blocked()
        hold = await one.reserve(KEY, ASK)
        await one.settle(KEY, None, None, hold, Outcome(True, 7, 0.0))
        await until(lambda: one.settles.idle)
        assert used(redis_server) == 7
        nursery.cancel_scope.cancel()
    await one.client.aclose()


async def test_settles_redis_did_not_take_wait_in_sqlite_and_apply_once(
    redis_server: RedisServer,  # noqa: F811
    tmp_path: Path,
) -> None:
    pending = PendingSettles(Database.open(tmp_path / "t.db"))
    one = counters(redis_server, pending)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: flush_settles(one, linger=3600))
        await wait_all_tasks_blocked()
        holds = [await one.reserve(KEY, ASK) for _ in range(3)]
        for hold in holds:
            await one.settle(KEY, None, None, hold, Outcome(True, 4, 0.0))
        redis_server.kill()
        nursery.cancel_scope.cancel()  # the last flush fails: all three are kept
    assert one.settles.idle
    assert pending.count() == one.pending_count == 3
    redis_server.start()  # no persistence: the holds are gone, the settles still count
    await trio.sleep(one.client.health.backoff)
    assert await one.replay() == 3
    assert await one.replay() == 0
    assert used(redis_server) == 12
    await one.client.aclose()
    pending.close()


async def test_a_crashed_journal_s_spend_raises_the_settled_spend_in_redis(
    redis_server: RedisServer,  # noqa: F811
) -> None:
    one = counters(redis_server)
    hold = await one.reserve(KEY, ASK)  # 30 held
    await one.settle(KEY, None, None, await one.reserve(KEY, ASK), Outcome(True, 40, 0.0))
    assert used(redis_server) == 40 + 30
    # a crashed worker's journal: 90 tokens and $0.50 settled (its last settles never arrived)
    assert await one.raise_to({KEY: Spend(90, 0.5), "ef" * 32: Spend(0, 0.0)}) == 1
    assert used(redis_server) == 90 + 30  # the open hold still counts on top
    cost = redis_server.command("GET", f"tokenomics:cost:{KEY}")
    assert cost == b"$9\r\n500000000\r\n"
    assert await one.raise_to({KEY: Spend(60, 0.1)}) == 0  # never lowered
    spend = await one.settle(KEY, None, None, hold, Outcome(True, 5, 0.0))
    assert spend is not None and spend.tokens == 95
    await one.client.aclose()


async def test_the_flusher_sends_only_settles_that_waited_linger(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A settle queued just before the flusher's turn is left for the next admission: sent on
    its own only once it has waited `linger` (here nothing listens: it is counted as lost)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    one = RedisCounters(RedisClient(RedisAddress("127.0.0.1", port), timeout=1))
    call = (KEY, [f"tokenomics:usage:{KEY}"], ["", "1", 1, 0, "", 1000, 0])
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: flush_settles(one, linger=1.0))
        await wait_all_tasks_blocked()
        one.settles.put(call, Outcome(True, 1, 0.0))  # t = 0
        await trio.sleep(0.6)
        carried = one.settles.take()  # an admission carried it
        assert carried == [call]
        one.settles.landed(carried)
        one.settles.put(call, Outcome(True, 1, 0.0))  # t = 0.6
        await trio.sleep(0.6)
        assert len(one.settles.queue) == 1 and one.dropped == 0  # not sent at 1.0
        # an admission carried what the flusher waited for: patience doubles, due at 2.6
        await trio.sleep(1.2)
        assert len(one.settles.queue) == 1 and one.dropped == 0  # not sent at 1.6 either
        await trio.sleep(0.3)
        assert one.settles.idle and one.dropped == 1  # sent at 2.6 (nobody there)
        one.settles.put(call, Outcome(True, 1, 0.0))  # t = 2.7: patience is back to 1
        await trio.sleep(0.9)
        assert one.dropped == 1
        await trio.sleep(0.2)
        assert one.settles.idle and one.dropped == 2  # sent at 3.7
        nursery.cancel_scope.cancel()


async def test_the_flusher_s_patience_grows_to_a_bound_while_admissions_carry_settles(
    autojump_clock: trio.testing.MockClock,
) -> None:
    one = RedisCounters(RedisClient(RedisAddress("127.0.0.1", 9), timeout=1))
    call = (KEY, [f"tokenomics:usage:{KEY}"], ["", "1", 1, 0, "", 1000, 0])
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: flush_settles(one, linger=1.0))
        await wait_all_tasks_blocked()
        for _ in range(40):  # steady traffic: a settle queued, carried 0.5 s later
            one.settles.put(call, Outcome(True, 1, 0.0))
            await trio.sleep(0.5)
            one.settles.landed(one.settles.take())
        one.settles.put(call, Outcome(True, 1, 0.0))  # then traffic stops
        await trio.sleep(PATIENCE - 0.1)
        assert one.dropped == 0
        await trio.sleep(0.2)
        assert one.settles.idle and one.dropped == 1  # waited at most PATIENCE lingers
        nursery.cancel_scope.cancel()


class Relay:
    """A TCP relay to Redis that can hold what clients send: while `holding`, bytes that
    arrive wait for `gate` (and `stuck` is set); bytes arriving after `holding` is unset pass."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.holding = False
        self.stuck = trio.Event()
        self.gate = trio.Event()

    async def serve(self, client: trio.SocketStream) -> None:
        redis = await trio.open_tcp_stream("127.0.0.1", self.port)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._copy, redis, client, False)
            await self._copy(client, redis, True)
            nursery.cancel_scope.cancel()

    async def _copy(self, source: trio.SocketStream, sink: trio.SocketStream, out: bool) -> None:
        while data := await source.receive_some():
            if out and self.holding:
                self.stuck.set()
                await self.gate.wait()
            await sink.send_all(data)


async def test_an_admission_refused_while_its_token_s_settles_fly_asks_again_once_they_land(
    redis_server: RedisServer,  # noqa: F811
) -> None:
    relay = Relay(redis_server.port)
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(trio.serve_tcp, relay.serve, 0)
        port = listeners[0].socket.getsockname()[1]
        one = RedisCounters(RedisClient(RedisAddress("127.0.0.1", port), timeout=5))
        one.settles.deferred = True  # settles queue (no flusher: this test sends them)
        slot, hold = await one.admit(KEY, ONE_AT_A_TIME, ASK)
        await one.settle(KEY, ONE_AT_A_TIME, slot, hold, Outcome(True, 25, 0.0))
        relay.holding = True
        nursery.start_soon(one.flush)  # the settle is on its way, held by the relay
        await relay.stuck.wait()
        relay.holding = False  # an admission on another connection passes it now: refused
        admitted: list[object] = []

        async def admit() -> None:
            try:
                admitted.append(await one.admit(KEY, ONE_AT_A_TIME, ASK))
            except RateLimited as exc:  # the slot the settle frees was still taken
                admitted.append(exc)

        nursery.start_soon(admit)
        await until(lambda: bool(admitted) or one.settles.waiting > 0)
        relay.gate.set()
        await until(lambda: bool(admitted))
        assert not isinstance(admitted[0], RateLimited)
        assert one.settles.idle and used(redis_server) == 25 + 30
        nursery.cancel_scope.cancel()
    await one.client.aclose()


async def test_a_rate_window_refusal_does_not_wait_for_flying_settles(
    redis_server: RedisServer,  # noqa: F811
) -> None:
    """Settles never take requests off a window: a client over its rate limit is answered at
    once, with one call, even while its settles are held on their way."""
    relay = Relay(redis_server.port)
    two_a_minute = RateLimit(
        (RateRule(requests=2, window="1m", window_delta=timedelta(minutes=1)),)
    )
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(trio.serve_tcp, relay.serve, 0)
        port = listeners[0].socket.getsockname()[1]
        one = RedisCounters(RedisClient(RedisAddress("127.0.0.1", port), timeout=5))
        one.settles.deferred = True
        for _ in range(2):
            slot, hold = await one.admit(KEY, two_a_minute, ASK)
            await one.settle(KEY, two_a_minute, slot, hold, Outcome(True, 5, 0.0))
        relay.holding = True
        nursery.start_soon(one.flush)
        await relay.stuck.wait()
        relay.holding = False
        with trio.fail_after(5), pytest.raises(RateLimited, match="2 requests in 1m window"):
            await one.admit(KEY, two_a_minute, ASK)
        assert KEY in one.settles.flying and one.settles.waiting == 0
        relay.gate.set()
        await until(lambda: one.settles.idle)
        nursery.cancel_scope.cancel()
    await one.client.aclose()


def test_which_refusals_settles_could_have_prevented() -> None:
    parallel = [1, b"1 concurrent requests (max 1)", 1000]
    window = [1, b"2 requests in 1m window (max 2)", 3000]
    assert settles_could_free("acquire", parallel) and settles_could_free("admit", parallel)
    assert not settles_could_free("acquire", window) and not settles_could_free("admit", window)
    assert settles_could_free("admit", [3, 1, 10, 0])  # the budget at the bound: took nothing
    assert not settles_could_free("admit", [2, 1, 10, 0])  # counted in the windows already
    assert settles_could_free("reserve", [1, 10, 0]) and settles_could_free("reserve", [2, 10, 0])
    assert not settles_could_free("admit", [0]) and not settles_could_free("reserve", [0, 1, 0])


async def test_settles_carried_after_a_script_flush_apply_once(
    redis_server: RedisServer,  # noqa: F811
) -> None:
    """Redis lost its scripts (a restart, SCRIPT FLUSH): the queued settles and the admission
    are refused (NOSCRIPT), loaded again and sent again, the settles with their stamps."""
    one = counters(redis_server)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: flush_settles(one, linger=3600))
        await wait_all_tasks_blocked()
        for tokens in (3, 4):
            slot, hold = await one.admit(KEY, ONE_AT_A_TIME, ASK)
            await one.settle(KEY, ONE_AT_A_TIME, slot, hold, Outcome(True, tokens, 0.0))
            redis_server.command("SCRIPT", "FLUSH")
        slot, hold = await one.admit(KEY, ONE_AT_A_TIME, ASK)
        assert one.settles.idle and used(redis_server) == 3 + 4 + 30
        nursery.cancel_scope.cancel()
    await one.client.aclose()


async def test_an_admission_failing_in_redis_leaves_its_carried_settles_applied_once(
    redis_server: RedisServer,  # noqa: F811
) -> None:
    """The settle carried ahead of an admission that fails in Redis (its rate window is not a
    hash) is applied once; the admission is a 503, and takes nothing."""
    one = counters(redis_server)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: flush_settles(one, linger=3600))
        await wait_all_tasks_blocked()
        slot, hold = await one.admit(KEY, ONE_AT_A_TIME, ASK)
        await one.settle(KEY, ONE_AT_A_TIME, slot, hold, Outcome(True, 25, 0.0))
        redis_server.command("SET", f"tokenomics:rate:{KEY}:60000:sliding", "not-a-hash")
        with pytest.raises(RedisUnavailable):
            await one.admit(KEY, ONE_AT_A_TIME, ASK)
        assert one.settles.idle and one.dropped == 0
        assert used(redis_server) == 25
        redis_server.command("DEL", f"tokenomics:rate:{KEY}:60000:sliding")
        await one.admit(KEY, ONE_AT_A_TIME, ASK)  # the slot was given back: admitted
        nursery.cancel_scope.cancel()
    await one.client.aclose()
