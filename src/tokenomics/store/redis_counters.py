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
back; its stamp (`redis_calls.SettleCommand`) makes a replay apply once even if the first try
got through.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import trio

from tokenomics.domain.budget import NANOS_PER_USD, Spend
from tokenomics.domain.counters import Ask, CountersHealth, Outcome
from tokenomics.domain.errors import RedisUnavailable
from tokenomics.store import redis_scripts
from tokenomics.store.redis_calls import (
    ADMIT_SHA,
    APPLIED,
    IDS,
    MEMO,
    RedisClaim,
    SettleCommand,
    acquire_call,
    ints,
    raise_budget_exceeded,
    raise_rate_limited,
    rated,
    reserve_args,
    settles_could_free,
    to_nanos,
    token_keys,
)
from tokenomics.store.redis_settles import Settles
from tokenomics.store.resp_wire import RespError

if TYPE_CHECKING:
    from tokenomics.domain.counters import Claim
    from tokenomics.domain.policy import RateLimit
    from tokenomics.store.redis_pending import PendingSettles
    from tokenomics.store.redis_settles import Call
    from tokenomics.store.resp import Command, RedisClient
    from tokenomics.store.resp_wire import Arg, Pre, Reply

SCRIPTS = {"reserve": redis_scripts.RESERVE, "acquire": redis_scripts.ACQUIRE,
           "admit": redis_scripts.ADMIT, "settle": redis_scripts.SETTLE,
           "raise": redis_scripts.RAISE}  # fmt: skip
RAISE_BATCH = 500
UNAVAILABLE = "usage store unavailable"

log = logging.getLogger("tokenomics.redis")


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
        self.settles = Settles()

    async def _load(self, name: str) -> str:
        reply = await self.client.call("SCRIPT", "LOAD", SCRIPTS[name])
        if not isinstance(reply, bytes):
            raise RedisUnavailable(f"Redis refused the {name} script: {reply!r}")
        self._shas[name] = sha = reply.decode()
        return sha

    async def run(
        self,
        name: str,
        keys: list[str],
        args: list[Arg],
        *,
        stamp: bool = False,
        head: Pre | None = None,
    ) -> list[Reply]:
        """EVALSHA the script (loading it first, and again after NOSCRIPT); an error reply
        from the script is a `RedisUnavailable` (503), never a crash. Queued settles go first
        in the same pipeline (`redis_settles`). With `stamp` (a settle sent anew, not
        replayed), the settle is stamped by the connection that sends it (`SettleCommand`).
        `head`: EVALSHA, the script's SHA and `keys` encoded once (`MEMO.admit_head`)."""
        sha = self._shas.get(name) or await self._load(name)
        command = [head, *args] if head is not None else self._command(sha, keys, args, stamp)
        if self.settles.queue:
            reply = await self.flush(command)
        else:
            reply = (await self.client.execute([command]))[0]
        if isinstance(reply, RespError) and reply.code == "NOSCRIPT":
            sha = await self._load(name)
            reply = (await self.client.execute([self._command(sha, keys, args, stamp)]))[0]
        if isinstance(reply, RespError) or not isinstance(reply, list):
            log.error("the Redis %s script failed: %s", name, reply)
            raise RedisUnavailable(f"{UNAVAILABLE}: the {name} script failed in Redis")
        return reply

    @staticmethod
    def _command(sha: str, keys: list[str], args: list[Arg], stamp: bool) -> Command:
        return (
            SettleCommand(sha, keys, args) if stamp else ["EVALSHA", sha, len(keys), *keys, *args]
        )

    async def ordered(
        self, name: str, key: str, keys: list[str], args: list[Arg], head: Pre | None = None
    ) -> list[Reply]:
        """`run` a check-and-take; when Redis refuses what settles of the same token, on their
        way on another connection, could have given back (`settles_could_free`), ask again
        once they have landed: the refusal may be theirs (`Settles.wait_landed`). Only those
        refusals wait, so admissions at high concurrency on one token are not serialised
        behind settles, and a client over its rate limit costs no second call."""
        reply = await self.run(name, keys, args, head=head)
        if key in self.settles.flying and settles_could_free(name, reply):
            await self.settles.wait_landed(key)
            reply = await self.run(name, keys, args, head=head)
        return reply

    async def flush(self, command: Command | None = None) -> Reply:
        """Send the queued settles, and `command` after them, in one pipeline; returns the
        reply to `command`. Settles that may not have been applied (Redis unavailable, the
        caller cancelled) are kept for `replay` (their marker makes a replay apply once)."""
        calls = self.settles.take()
        try:
            sha = self._shas.get("settle") or await self._load("settle")
            commands: list[Command] = [SettleCommand(sha, keys, args) for _, keys, args in calls]
            replies = await self.client.execute([*commands, command] if command else commands)
            await self._settled(calls, replies)
        except BaseException as exc:
            with trio.CancelScope(shield=True):
                await self._keep_calls(calls, exc)
            raise
        finally:
            self.settles.landed(calls)
        return replies[-1] if command else None

    async def _settled(self, calls: list[Call], replies: list[Reply]) -> None:
        for (key, keys, args), reply in zip(calls, replies, strict=False):
            if isinstance(reply, RespError):  # NOSCRIPT (a Redis restart) or a failure
                # not applied (NOSCRIPT; or OOM, refused at its first write, the marker's):
                # sent again, stamped anew. Not by its stamp: a later settle of the same
                # pipeline may have been applied, and its number is higher.
                try:
                    reply = await self.run("settle", keys, args, stamp=True)
                except RedisUnavailable as exc:
                    await self._keep_calls([(key, keys, args)], exc)
                    continue
            numbers = ints(reply, 2) if isinstance(reply, list) else None
            if numbers is not None:
                self.settles.learn(key, Spend(numbers[0], numbers[1] / NANOS_PER_USD))

    async def acquire(self, key: str, limit: RateLimit | None) -> Claim:
        if not rated(limit):
            return RedisClaim(key)
        keys, args, slot = acquire_call(key, limit)
        try:
            reply = await self.ordered("acquire", key, keys, args)
        except RedisUnavailable:
            if self.fail_open:
                return RedisClaim(key)
            raise
        raise_rate_limited(reply)
        return RedisClaim(key, slot=slot)

    async def reserve(self, key: str, ask: Ask) -> Claim:
        if not ask.limited:
            return RedisClaim(key)  # nothing to check: usage is added when it settles
        args, hold = reserve_args(ask)
        reply = await self.ordered("reserve", key, token_keys(key), args)
        numbers = ints(reply, 3)
        if numbers is None:
            raise RedisUnavailable(f"{UNAVAILABLE}: unexpected reply to reserve")
        raise_budget_exceeded(numbers, ask)
        return RedisClaim(key, hold=hold)

    async def admit(
        self, key: str, limit: RateLimit | None, ask: Ask, *, bound: bool = False
    ) -> tuple[Claim, Claim]:
        """`acquire` then `reserve` in one round trip (the `ADMIT` script) when both are
        needed. Redis unavailable is a 503 even with `rate_limit_fail_open`: the budget could
        not be checked either (the two-step path ends the same way). With `bound`, a budget
        refusal takes nothing (`ADMIT` answers 3 instead of 2)."""
        if not rated(limit) or not ask.limited:  # one of them is no step: nothing to undo
            return await self.acquire(key, limit), await self.reserve(key, ask)
        assert limit is not None  # rated
        _, acquire_args, slot = acquire_call(key, limit)
        budget_args, hold = reserve_args(ask)
        own, windows = MEMO.keys_of(key, limit)  # the token's keys, its parallel one, windows
        keys = [*own, *windows]
        flag = "1" if bound else "0"
        args = [*budget_args, flag, *acquire_args]
        head = MEMO.admit_head(key, limit) if self._shas.get("admit") == ADMIT_SHA else None
        reply = await self.ordered("admit", key, keys, args, head)
        raise_rate_limited(reply)
        if reply and reply[0] in (2, 3):
            numbers = ints(reply[1:], 3)
            if numbers is None:
                raise RedisUnavailable(f"{UNAVAILABLE}: unexpected reply to admit")
            raise_budget_exceeded(numbers, ask)
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
        marker = APPLIED + (hold or IDS.new())  # a stream of its own until sent
        committed = "1" if outcome.committed else "0"
        nanos = to_nanos(outcome.cost_usd)
        args: list[Arg] = [hold, committed, outcome.tokens, nanos, slot_id, "z1"]
        if limit is None:
            return [*token_keys(key), f"tokenomics:parallel:{key}", marker], [*args, 0]
        own, _ = MEMO.keys_of(key, limit)  # the token's keys, its parallel one
        window_keys, window_args = MEMO.token_windows(key, limit)
        if outcome.tokens <= 0 or not window_keys:
            return [*own, marker], [*args, 0]
        return [*own, marker, *window_keys], [*args, *window_args]

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
        if self.settles.deferred:
            return self.settles.put((key, keys, args), outcome)
        try:
            reply = await self.run("settle", keys, args, stamp=True)
        except RedisUnavailable as exc:
            await self._keep_calls([(key, keys, args)], exc)
            return None
        numbers = ints(reply, 2)
        return None if numbers is None else Spend(numbers[0], numbers[1] / NANOS_PER_USD)

    async def _keep_calls(self, calls: list[Call], exc: BaseException) -> None:
        if not calls:
            return
        why = exc.message if isinstance(exc, RedisUnavailable) else type(exc).__name__
        if self.pending is None:
            self.dropped += len(calls)
            log.error("%d settle(s) lost while Redis was unavailable: %s", len(calls), why)
            return
        rows = [(keys, [str(a) for a in args]) for _, keys, args in calls]
        kept = await trio.to_thread.run_sync(self.pending.add_many, rows)
        self.pending_count += kept
        if kept < len(calls):
            self.dropped += len(calls) - kept
            log.error(
                "%d settle(s) could not be queued for Redis (queue full or store unwritable);"
                " dropped", len(calls) - kept,
            )  # fmt: skip

    async def replay(self, batch: int = 200) -> int:
        """Apply queued settles (oldest first) while Redis answers; returns how many."""
        if self.pending is None:
            return 0
        done = 0
        while True:
            rows = await trio.to_thread.run_sync(self.pending.take, batch)
            if not rows:  # counted, not 0: a settle may have been queued meanwhile
                self.pending_count = await trio.to_thread.run_sync(self.pending.count)
                return done
            applied: list[int] = []
            try:  # in order: a stream's settles apply once only in their order
                for row_id, keys, args in rows:
                    await self.run("settle", keys, list(args))
                    applied.append(row_id)
            finally:
                if applied:
                    await trio.to_thread.run_sync(self.pending.delete, applied)
                    done += len(applied)
                    self.pending_count = max(self.pending_count - len(applied), 0)

    async def raise_to(self, spends: dict[str, Spend]) -> int:
        """Raise each token's settled spend in Redis to at least the given one (what crashed
        journals prove, `services.ledger`); returns how many were raised. The settles queued in
        SQLite are replayed first (`redis_sync.restorer`): one of those arriving after the
        raise would count again."""
        raised = 0
        items = list(spends.items())
        for start in range(0, len(items), RAISE_BATCH):
            sha = self._shas.get("raise") or await self._load("raise")
            commands: list[list[Arg]] = [
                ["EVALSHA", sha, 3, *token_keys(key)[:3], max(spend.tokens, 0),
                 to_nanos(max(spend.cost_usd, 0.0))]
                for key, spend in items[start : start + RAISE_BATCH]
            ]  # fmt: skip
            for reply in await self.client.execute(commands):
                if isinstance(reply, RespError):
                    self._shas.pop("raise", None)  # NOSCRIPT (a restart): loaded next time
                    raise RedisUnavailable(f"{UNAVAILABLE}: the raise script failed: {reply.code}")
                raised += reply == [1]
        return raised

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
