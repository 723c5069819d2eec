"""The Redis counters backend (`session.backend: redis`): budgets, rate windows and
`max_parallel` shared by every proxy and worker (decisions D14, D16; issue 18).

Each step is one EVALSHA of a script in `redis_scripts` (loaded once with SCRIPT LOAD, loaded
again after NOSCRIPT, i.e. a Redis restart): at most one round trip per step, none for a step
the policy does not need (no rate limit: no acquire; no budget: no reserve), and one for the
admission of a policy with both (`admit`, the `ADMIT` script: the stages defer the rate limit
to the budget step, `pipeline.admission`). The overshoot rule
of `domain.budget` holds fleet-wide: a reservation holds the input estimate and the output cap,
so the spend passes a limit by at most the output of the last request admitted.

Redis down or slow: every call is bounded (`session.redis.timeout_ms`); an admission that
cannot reach Redis is refused with 503 (fail closed: no budget or rate limit can be checked),
unless `session.redis.rate_limit_fail_open` lets rate limits through. A settle that cannot
reach Redis is kept in the local SQLite queue (`redis_pending`) and replayed when Redis is
back; the `settled:<id>` marker makes a replay apply once even if the first try got through.
"""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING

import trio

from tokenomics.domain.budget import NANOS_PER_USD, Spend, format_usd
from tokenomics.domain.counters import Ask, CountersHealth, Outcome
from tokenomics.domain.errors import BudgetExceeded, RateLimited, RedisUnavailable
from tokenomics.store import redis_scripts
from tokenomics.store.resp import RespError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from tokenomics.domain.counters import Claim
    from tokenomics.domain.policy import RateLimit
    from tokenomics.store.redis_pending import PendingSettles
    from tokenomics.store.resp import Arg, RedisClient, Reply

HOLD_TTL_MS = 3_600_000  # a reservation of a proxy that died lapses after an hour
SLOT_TTL_MS = 600_000  # its parallel slots after ten minutes (a longer stream frees its slot)
MARKER_TTL_MS = 7 * 86_400_000  # how long a settle is remembered (replays within a week)
SCRIPTS = {"reserve": redis_scripts.RESERVE, "acquire": redis_scripts.ACQUIRE,
           "admit": redis_scripts.ADMIT, "settle": redis_scripts.SETTLE}  # fmt: skip
UNAVAILABLE = "usage store unavailable"

log = logging.getLogger("tokenomics.redis")


class RedisClaim:
    """A reservation (`hold`, with its amounts) or a parallel slot (`slot`) held in Redis."""

    __slots__ = ("hold", "key", "slot")

    def __init__(self, key: str, *, hold: str = "", slot: str = "") -> None:
        self.key = key
        self.hold = hold
        self.slot = slot


def _nanos(usd: float) -> int:
    return round(usd * NANOS_PER_USD)


def _windows(limit: RateLimit | None) -> list[tuple[int, str]]:
    """The distinct (length in ms, strategy) windows of a limit's rules, in rule order."""
    seen: list[tuple[int, str]] = []
    for rule in limit.rules if limit else ():
        window = (max(int(rule.window_delta.total_seconds() * 1000), 1), rule.strategy)
        if window not in seen:
            seen.append(window)
    return seen


def _ints(reply: list[Reply], count: int) -> list[int] | None:
    numbers = [v for v in reply if isinstance(v, int)]
    return numbers if len(numbers) == count == len(reply) else None


def _rated(limit: RateLimit | None) -> bool:
    return limit is not None and (bool(limit.rules) or limit.max_parallel > 0)


def _acquire_call(key: str, limit: RateLimit | None) -> tuple[list[str], list[Arg], str]:
    """KEYS and ARGV of `ACQUIRE` (the `A` part of `ADMIT`), and the slot id ("" for none)."""
    assert limit is not None
    slot = uuid.uuid4().hex if limit.max_parallel > 0 else ""
    windows = _windows(limit)
    keys = [f"tokenomics:parallel:{key}", *(window_key(key, w) for w in windows)]
    args: list[Arg] = [limit.max_parallel, slot or "-", SLOT_TTL_MS, len(windows)]
    for length, strategy in windows:
        args += [length, strategy]
    args.append(len(limit.rules))
    for rule in limit.rules:
        window = (max(int(rule.window_delta.total_seconds() * 1000), 1), rule.strategy)
        args += [windows.index(window) + 1, rule.requests, rule.tokens, rule.window]
    return keys, args, slot


def _reserve_args(ask: Ask) -> tuple[list[Arg], str]:
    """ARGV of `RESERVE` (the `R` part of `ADMIT`) and the reservation id."""
    tokens = ask.input_tokens + ask.output_tokens
    nanos = _nanos(ask.cost_estimate_usd) + _nanos(ask.output_cost_usd)
    hold = uuid.uuid4().hex
    args: list[Arg] = [ask.max_tokens, _nanos(ask.max_cost_usd) if ask.max_cost_usd > 0 else 0,
                       ask.input_tokens, _nanos(ask.cost_estimate_usd), tokens, nanos, hold,
                       HOLD_TTL_MS]  # fmt: skip
    return args, hold


def _raise_rate_limited(reply: list[Reply]) -> None:
    if reply and reply[0] == 1 and len(reply) == 3:
        what, retry = reply[1], reply[2]
        text = what.decode("utf-8", "replace") if isinstance(what, bytes) else "limit"
        seconds = max(retry, 1) / 1000 if isinstance(retry, int) else 1.0
        raise RateLimited(f"rate limit exceeded: {text}", seconds)


def _raise_budget_exceeded(numbers: list[int], ask: Ask) -> None:
    verdict, used, used_nanos = numbers
    if verdict == 1:
        raise BudgetExceeded(
            f"budget exceeded: used {used} + input {ask.input_tokens} > limit {ask.max_tokens}",
            kind="tokens", used=used, requested=ask.input_tokens, limit=ask.max_tokens,
        )  # fmt: skip
    if verdict == 2:
        spent = used_nanos / NANOS_PER_USD
        raise BudgetExceeded(
            f"cost budget exceeded: used ${format_usd(spent)} + estimated "
            f"${format_usd(ask.cost_estimate_usd)} > limit ${format_usd(ask.max_cost_usd)}",
            kind="cost", used=spent, requested=ask.cost_estimate_usd, limit=ask.max_cost_usd,
        )  # fmt: skip


def usage_key(key: str) -> str:
    return f"tokenomics:usage:{key}"


def token_keys(key: str) -> list[str]:
    return [usage_key(key), f"tokenomics:cost:{key}", f"tokenomics:holds:{key}",
            f"tokenomics:hold_expiry:{key}"]  # fmt: skip


def window_key(key: str, window: tuple[int, str]) -> str:
    return f"tokenomics:rate:{key}:{window[0]}:{window[1]}"


class RedisCounters:
    backend = "redis"
    one_step_admission = True  # `admit` is one round trip: the stages defer the rate limit

    def __init__(
        self,
        client: RedisClient,
        pending: PendingSettles | None = None,
        *,
        rate_limit_fail_open: bool = False,
    ) -> None:
        self.client = client
        self.pending = pending
        self.fail_open = rate_limit_fail_open
        self._shas: dict[str, str] = {}
        self.pending_count = 0
        self.dropped = 0

    async def _load(self, name: str) -> str:
        reply = await self.client.call("SCRIPT", "LOAD", SCRIPTS[name])
        if not isinstance(reply, bytes):
            raise RedisUnavailable(f"Redis refused the {name} script: {reply!r}")
        self._shas[name] = sha = reply.decode()
        return sha

    async def run(self, name: str, keys: Sequence[str], args: Sequence[Arg]) -> list[Reply]:
        """EVALSHA the script (loading it first, and again after NOSCRIPT); an error reply
        from the script is a `RedisUnavailable` (503), never a crash."""
        sha = self._shas.get(name) or await self._load(name)
        reply = await self.client.call("EVALSHA", sha, len(keys), *keys, *args)
        if isinstance(reply, RespError) and reply.code == "NOSCRIPT":
            sha = await self._load(name)
            reply = await self.client.call("EVALSHA", sha, len(keys), *keys, *args)
        if isinstance(reply, RespError) or not isinstance(reply, list):
            log.error("the Redis %s script failed: %s", name, reply)
            raise RedisUnavailable(f"{UNAVAILABLE}: the {name} script failed in Redis")
        return reply

    async def acquire(self, key: str, limit: RateLimit | None) -> Claim:
        if not _rated(limit):
            return RedisClaim(key)
        keys, args, slot = _acquire_call(key, limit)
        try:
            reply = await self.run("acquire", keys, args)
        except RedisUnavailable:
            if self.fail_open:
                return RedisClaim(key)
            raise
        _raise_rate_limited(reply)
        return RedisClaim(key, slot=slot)

    async def reserve(self, key: str, ask: Ask) -> Claim:
        if not ask.limited:
            return RedisClaim(key)  # nothing to check: usage is added when it settles
        args, hold = _reserve_args(ask)
        reply = await self.run("reserve", token_keys(key), args)
        numbers = _ints(reply, 3)
        if numbers is None:
            raise RedisUnavailable(f"{UNAVAILABLE}: unexpected reply to reserve")
        _raise_budget_exceeded(numbers, ask)
        return RedisClaim(key, hold=hold)

    async def admit(self, key: str, limit: RateLimit | None, ask: Ask) -> tuple[Claim, Claim]:
        """`acquire` then `reserve` in one round trip (the `ADMIT` script) when both are
        needed. Redis unavailable is a 503 even with `rate_limit_fail_open`: the budget could
        not be checked either (the two-step path ends the same way)."""
        if not _rated(limit) or not ask.limited:
            return await self.acquire(key, limit), await self.reserve(key, ask)
        acquire_keys, acquire_args, slot = _acquire_call(key, limit)
        reserve_args, hold = _reserve_args(ask)
        keys = [*token_keys(key), *acquire_keys]
        reply = await self.run("admit", keys, [*reserve_args, *acquire_args])
        _raise_rate_limited(reply)
        if reply and reply[0] == 2:
            numbers = _ints(reply[1:], 3)
            if numbers is None:
                raise RedisUnavailable(f"{UNAVAILABLE}: unexpected reply to admit")
            _raise_budget_exceeded(numbers, ask)
        if reply != [0]:
            raise RedisUnavailable(f"{UNAVAILABLE}: unexpected reply to admit")
        return RedisClaim(key, slot=slot), RedisClaim(key, hold=hold)

    def settle_call(
        self,
        key: str,
        limit: RateLimit | None,
        slot: Claim | None,
        reservation: Claim | None,
        outcome: Outcome,
    ) -> tuple[list[str], list[Arg]]:
        hold = reservation.hold if isinstance(reservation, RedisClaim) else ""
        slot_id = slot.slot if isinstance(slot, RedisClaim) else ""
        windows = _windows(limit) if outcome.tokens > 0 else []
        marker = f"tokenomics:settled:{hold or uuid.uuid4().hex}"
        keys = [*token_keys(key), f"tokenomics:parallel:{key}", marker]
        keys += [window_key(key, w) for w in windows]
        committed = "1" if outcome.committed else "0"
        nanos = _nanos(outcome.cost_usd)
        args: list[Arg] = [hold, committed, outcome.tokens, nanos, slot_id, MARKER_TTL_MS]
        args.append(len(windows))
        for length, strategy in windows:
            args += [length, strategy]
        return keys, args

    async def settle(
        self,
        key: str,
        limit: RateLimit | None,
        slot: Claim | None,
        reservation: Claim | None,
        outcome: Outcome,
    ) -> Spend | None:
        keys, args = self.settle_call(key, limit, slot, reservation, outcome)
        spent = outcome.committed and (outcome.tokens > 0 or outcome.cost_usd > 0)
        if not args[0] and not args[4] and not spent:
            return None  # nothing held, nothing spent
        try:
            reply = await self.run("settle", keys, args)
        except RedisUnavailable as exc:
            await self._keep(keys, args, exc)
            return None
        numbers = _ints(reply, 2)
        return None if numbers is None else Spend(numbers[0], numbers[1] / NANOS_PER_USD)

    async def _keep(self, keys: list[str], args: list[Arg], exc: RedisUnavailable) -> None:
        if self.pending is None:
            self.dropped += 1
            log.error("a settle was lost while Redis was unavailable: %s", exc.message)
            return
        kept = await trio.to_thread.run_sync(self.pending.add, keys, [str(a) for a in args])
        if kept:
            self.pending_count += 1
        else:
            self.dropped += 1
            log.error(
                "a settle could not be queued for Redis (queue full or store unwritable); dropped"
            )

    async def replay(self, batch: int = 200) -> int:
        """Apply queued settles (oldest first) while Redis answers; returns how many."""
        if self.pending is None:
            return 0
        done = 0
        while True:
            rows = await trio.to_thread.run_sync(self.pending.take, batch)
            if not rows:
                self.pending_count = 0
                return done
            applied: list[int] = []
            try:
                for row_id, keys, args in rows:
                    await self.run("settle", keys, args)
                    applied.append(row_id)
            finally:
                if applied:
                    await trio.to_thread.run_sync(self.pending.delete, applied)
                    done += len(applied)
                    self.pending_count = max(self.pending_count - len(applied), 0)

    async def ping(self) -> bool:
        try:
            return await self.client.call("PING") == b"PONG"
        except RedisUnavailable:
            return False

    def health(self) -> CountersHealth:
        state = self.client.health
        where = f"{self.client.address.host}:{self.client.address.port}"
        detail = f"{where} up" if state.up else f"{where} down: {state.last_error}"
        return CountersHealth("redis", state.up, detail, self.pending_count)
