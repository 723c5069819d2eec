"""`Counters.admit` against a real redis-server: a rate limit and a budget checked and taken in
one EVALSHA (one round trip), leaving what the in-process backend's acquire-then-reserve
leaves, refusal by refusal."""

from __future__ import annotations

from datetime import timedelta

import pytest
import trio
from tests.support.redis_server import RedisServer, redis_server  # noqa: F401

from tokenomics.domain.budget import Budgets
from tokenomics.domain.counters import Ask, Counters, Outcome
from tokenomics.domain.errors import BudgetExceeded, RateLimited
from tokenomics.domain.policy import RateLimit, RateRule
from tokenomics.domain.ratelimit import RateLimiter
from tokenomics.store import redis_scripts
from tokenomics.store.local_counters import LocalCounters
from tokenomics.store.redis_calls import (
    ADMIT_SHA,
    MEMO,
    SETTLE_SHA,
    SLOT_TTL_MS,
    SettleCommand,
    acquire_call,
    window_key,
)
from tokenomics.store.redis_counters import RedisCounters
from tokenomics.store.resp import RedisAddress, RedisClient
from tokenomics.store.resp_wire import encode

KEY = "ab" * 32
MINUTE = timedelta(minutes=1)


def counters(server: RedisServer) -> RedisCounters:
    return RedisCounters(RedisClient(RedisAddress("127.0.0.1", server.port), timeout=1))


def ask(limit: int, tokens: int, output: int = 0) -> Ask:
    return Ask(limit, 0.0, tokens, 0.0, output, 0.0)


def rate(requests: int, max_parallel: int = 0) -> RateLimit:
    rule = RateRule(requests=requests, window="1m", window_delta=MINUTE)
    return RateLimit((rule,), max_parallel=max_parallel)


def stat(server: RedisServer, command: str) -> int:
    """How many times `command` ran since the last CONFIG RESETSTAT (INFO commandstats)."""
    info = server.command("INFO", "commandstats").decode()
    for line in info.splitlines():
        if line.startswith(f"cmdstat_{command}:"):
            return int(line.split("calls=")[1].split(",")[0])
    return 0


def number(server: RedisServer, *command: str) -> int:
    reply = server.command(*command)
    if reply.startswith(b":"):
        return int(reply[1:].strip())
    return 0 if reply.startswith(b"$-1") else int(reply.split(b"\r\n")[1])


def requests_in(server: RedisServer, window: str) -> int:
    """The requests counted in a sliding window (its `r<bucket>` fields)."""
    items = server.command("HGETALL", window).split(b"\r\n")[2::2]
    pairs = zip(items[0::2], items[1::2], strict=False)
    return sum(int(value) for field, value in pairs if field.startswith(b"r"))


async def test_admission_is_one_evalsha_and_takes_slot_window_and_hold(
    redis_server: RedisServer,  # noqa: F811
) -> None:
    one = counters(redis_server)
    limit = rate(10, max_parallel=3)
    first = await one.admit(KEY, limit, ask(1000, 10, 20))  # scripts loaded, connection open
    await one.settle(KEY, limit, *first, Outcome(True, 25, 0.0))
    redis_server.command("CONFIG", "RESETSTAT")
    slot, hold = await one.admit(KEY, limit, ask(1000, 10, 20))
    assert stat(redis_server, "evalsha") == 1
    assert stat(redis_server, "evalsha") == 1  # the INFO above is not counted as one
    assert number(redis_server, "ZCARD", f"tokenomics:parallel:{KEY}") == 1
    assert number(redis_server, "GET", f"tokenomics:usage:{KEY}") == 25 + 30
    window = window_key(KEY, (60_000, "sliding"))
    assert requests_in(redis_server, window) == 2
    spend = await one.settle(KEY, limit, slot, hold, Outcome(True, 40, 0.0))
    assert spend is not None and spend.tokens == 65
    assert number(redis_server, "ZCARD", f"tokenomics:parallel:{KEY}") == 0
    assert stat(redis_server, "evalsha") == 2  # admission + settle: two round trips in all


async def test_a_rate_refusal_reserves_nothing(redis_server: RedisServer) -> None:  # noqa: F811
    one = counters(redis_server)
    limit = rate(10, max_parallel=1)
    await one.admit(KEY, limit, ask(1000, 10, 20))
    with pytest.raises(RateLimited, match=r"1 concurrent requests \(max 1\)"):
        await one.admit(KEY, limit, ask(1000, 10, 20))
    assert number(redis_server, "GET", f"tokenomics:usage:{KEY}") == 30  # the first hold only
    assert number(redis_server, "HLEN", f"tokenomics:holds:{KEY}") == 4  # one hold, _t, _n, _p


@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_a_budget_refusal_counts_the_request_but_keeps_no_slot(
    backend: str,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    """Both backends end the same: the refused request counts in the window (as the two-step
    acquire-then-reserve always did), its parallel slot is free again, nothing is reserved."""
    one: Counters = (
        counters(redis_server)
        if backend == "redis"
        else LocalCounters(Budgets(), RateLimiter(trio.current_time))
    )
    limit = rate(2, max_parallel=1)
    with pytest.raises(BudgetExceeded, match=r"used 0 \+ input 50 > limit 40"):
        await one.admit(KEY, limit, ask(40, 50))
    slot, hold = await one.admit(KEY, limit, ask(40, 10, 5))  # the slot is free
    with pytest.raises(RateLimited, match=r"1 concurrent requests \(max 1\)"):
        await one.admit(KEY, limit, ask(40, 10))
    await one.settle(KEY, limit, slot, hold, Outcome(True, 12, 0.0))
    with pytest.raises(RateLimited, match=r"2 requests in 1m window \(max 2\)"):
        await one.admit(KEY, limit, ask(40, 10))
    if isinstance(one, RedisCounters):
        assert number(redis_server, "GET", f"tokenomics:usage:{KEY}") == 12
        assert number(redis_server, "ZCARD", f"tokenomics:parallel:{KEY}") == 0
    else:
        assert isinstance(one, LocalCounters)
        assert one.budgets.settled(KEY).tokens == 12
        assert one.limiter.statistics().in_flight == 0


@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_a_budget_refusal_at_a_bound_takes_nothing(
    backend: str,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    """Asked with a bound of the input (`bound=True`), a budget refusal leaves the request
    uncounted and holds nothing, so the ask with the estimate that follows counts it once."""
    one: Counters = (
        counters(redis_server)
        if backend == "redis"
        else LocalCounters(Budgets(), RateLimiter(trio.current_time))
    )
    limit = rate(2, max_parallel=1)
    with pytest.raises(BudgetExceeded, match=r"used 0 \+ input 50 > limit 40"):
        await one.admit(KEY, limit, ask(40, 50), bound=True)
    slot, hold = await one.admit(KEY, limit, ask(40, 10, 5))  # the estimate: admitted
    with pytest.raises(RateLimited, match=r"1 concurrent requests \(max 1\)"):
        await one.admit(KEY, limit, ask(40, 10), bound=True)  # the slot is taken
    await one.settle(KEY, limit, slot, hold, Outcome(True, 12, 0.0))
    slot, hold = await one.admit(KEY, limit, ask(40, 10), bound=True)  # counted: 2 of 2
    await one.settle(KEY, limit, slot, hold, Outcome(True, 12, 0.0))
    with pytest.raises(RateLimited, match=r"2 requests in 1m window \(max 2\)"):
        await one.admit(KEY, limit, ask(40, 10), bound=True)
    if isinstance(one, RedisCounters):
        assert number(redis_server, "GET", f"tokenomics:usage:{KEY}") == 24
        assert number(redis_server, "HLEN", f"tokenomics:holds:{KEY}") == 3  # _t, _n, _p only
        assert number(redis_server, "ZCARD", f"tokenomics:parallel:{KEY}") == 0
    else:
        assert isinstance(one, LocalCounters)
        assert one.budgets.settled(KEY).tokens == 24
        assert one.limiter.statistics().in_flight == 0


async def test_many_clients_admitting_overshoot_by_at_most_one_output(
    redis_server: RedisServer,  # noqa: F811
) -> None:
    """40 concurrent admissions through 4 clients, with a rate limit, `max_parallel` and a
    budget: each input 10, output cap 20, actual 30; spend <= limit + one output."""
    clients = [counters(redis_server) for _ in range(4)]
    limit = rate(30, max_parallel=8)
    outcomes: list[str] = []

    async def one(i: int) -> None:
        client = clients[i % 4]
        try:
            slot, hold = await client.admit(KEY, limit, ask(200, 10, output=20))
        except (BudgetExceeded, RateLimited) as exc:
            outcomes.append(type(exc).__name__)
            return
        outcomes.append("admitted")
        await trio.sleep(0.01)
        await client.settle(KEY, limit, slot, hold, Outcome(True, 30, 0.0))

    async with trio.open_nursery() as nursery:
        for i in range(40):
            nursery.start_soon(one, i)
    admitted = outcomes.count("admitted")
    spent = number(redis_server, "GET", f"tokenomics:usage:{KEY}")
    assert spent == 30 * admitted
    assert spent <= 200 + 20  # the limit plus one request's output
    assert admitted >= 6 and len(outcomes) == 40
    assert number(redis_server, "ZCARD", f"tokenomics:parallel:{KEY}") == 0


async def test_admission_without_a_rate_limit_or_a_budget_is_one_step_or_none(
    redis_server: RedisServer,  # noqa: F811
) -> None:
    one = counters(redis_server)
    await one.admit(KEY, rate(5), ask(0, 10))  # warm: the acquire script loaded
    await one.admit(KEY, None, ask(100, 10))  # and the reserve one
    redis_server.command("CONFIG", "RESETSTAT")
    await one.admit(KEY, rate(5), ask(0, 10))
    await one.admit(KEY, None, ask(100, 10))
    await one.admit(KEY, None, ask(0, 10))
    assert stat(redis_server, "evalsha") == 2


def test_calls_built_from_the_memo_are_those_built_afresh() -> None:
    """A limit's and a token's unchanging parts are remembered (by the limit's identity):
    every limit still gets its own windows and rules, also once the memo has been emptied."""
    slow = RateLimit((RateRule(requests=5, window="1m", window_delta=MINUTE),
                      RateRule(requests=0, tokens=50, window="1h", window_delta=MINUTE * 60,
                               strategy="fixed")), max_parallel=2)  # fmt: skip
    for _ in range(2):
        for i in range(MEMO.MAX + 5):
            keys, args, _ = acquire_call(f"{i:064x}", rate(i + 1))
            assert keys == [
                f"tokenomics:parallel:{i:064x}",
                window_key(f"{i:064x}", (60_000, "sliding")),
            ]
            assert encode(*args[3:]) == encode(1, 60_000, "sliding", 1, 1, i + 1, 0, "1m")
        keys, args, slot = acquire_call(KEY, slow)
        assert keys[1:] == [
            window_key(KEY, (60_000, "sliding")),
            window_key(KEY, (3_600_000, "fixed")),
        ]
        assert encode(*args) == encode(2, slot, SLOT_TTL_MS, 2, 60_000, "sliding", 3_600_000,
                                       "fixed", 2, 1, 5, 0, "1m", 2, 0, 50, "1h")  # fmt: skip
        assert len(MEMO.limits) <= MEMO.MAX and len(MEMO.keys) <= MEMO.MAX


async def test_commands_with_parts_encoded_once_are_the_full_commands(
    redis_server: RedisServer,  # noqa: F811
) -> None:
    """ADMIT's and SETTLE's EVALSHA, SHA and keys are encoded once (`Pre`): the bytes sent are
    those of the full command, and the SHAs are what Redis answers to SCRIPT LOAD."""
    client = RedisClient(RedisAddress("127.0.0.1", redis_server.port), timeout=2)
    assert await client.call("SCRIPT", "LOAD", redis_scripts.ADMIT) == ADMIT_SHA.encode()
    assert await client.call("SCRIPT", "LOAD", redis_scripts.SETTLE) == SETTLE_SHA.encode()
    limit = rate(7)
    own, windows = MEMO.keys_of(KEY, limit)
    keys = [*own, *windows]
    assert encode(MEMO.admit_head(KEY, limit), 1, "x") == encode(
        "EVALSHA", ADMIT_SHA, len(keys), *keys, 1, "x"
    )
    counters = RedisCounters(client)
    settle_keys, args = counters.settle_call(KEY, limit, None, None, Outcome(True, 3, 0.0))
    stamped = SettleCommand(SETTLE_SHA, settle_keys, args).stamp("s1", 4)
    assert encode(*stamped) == encode("EVALSHA", SETTLE_SHA, len(settle_keys), *settle_keys, *args)
    assert settle_keys[5] == "tokenomics:applied:s1" and args[5] == "z4"
    await client.aclose()
