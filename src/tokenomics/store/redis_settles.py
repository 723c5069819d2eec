"""Settles off the request's path (issue 18): while the flusher task runs
(`services.redis_sync.keep`), `RedisCounters.settle` only queues the SETTLE call here and
returns; the queue goes to Redis in one pipeline, ahead of the next admission's EVALSHA (same
connection, same write, so Redis applies a request's settle before any later admission of this
proxy) or, when no admission comes within `LINGER` (more while admissions keep coming:
`services.redis_sync.flush_settles`), on its own. At concurrency 1 a request then
costs one round trip instead of two, and none of it after the upstream's answer.

What a settle returns is no longer Redis's reply but the last settled spend this proxy knows
for the token plus the request's own usage (`known`): a lower bound of the fleet's total, which
is what the journal keeps so that a crashed worker's spend reaches Redis at the restart
(`RedisCounters.raise_to`). Each reply raises `known` again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio

from tokenomics.domain.budget import Spend

if TYPE_CHECKING:
    from tokenomics.domain.counters import Outcome
    from tokenomics.store.resp_wire import Arg

LINGER = 0.005  # how long a queued settle waits for an admission to carry it
PATIENCE = 8  # while admissions carry them, up to this many lingers (`flush_settles`)
MAX_KNOWN = 100_000  # tokens whose spend is remembered (bounded: the oldest go first)

Call = tuple[str, list[str], list["Arg"]]  # token key, KEYS, ARGV of one SETTLE


class Settles:
    def __init__(self) -> None:
        self.queue: list[Call] = []
        self.known: dict[str, Spend] = {}
        self.deferred = False  # set by the flusher task while it runs
        self.sending = 0  # settles taken from the queue whose pipeline has not answered yet
        self.flying: dict[str, int] = {}  # the same, by token key
        self.waiting = 0  # admissions waiting for a token's flying settles
        self.taken = 0  # how many times the queue was taken (by an admission or the flusher)
        self._landed = trio.Event()
        self.since = 0.0  # when the oldest queued settle was queued (Trio's clock)
        self._wake = trio.Event()
        self._waiting = False

    @property
    def idle(self) -> bool:
        """No settle waiting or on its way (what tests wait for)."""
        return not self.queue and not self.sending

    def put(self, call: Call, outcome: Outcome) -> Spend:
        """Queue one settle; the token's spend as far as this proxy knows, with it."""
        if not self.queue:
            self.since = trio.current_time()
        self.queue.append(call)
        if self._waiting:
            self._wake.set()
        key = call[0]
        spend = self.known.get(key, Spend())
        if outcome.committed:
            spend = Spend(spend.tokens + outcome.tokens, spend.cost_usd + outcome.cost_usd)
        self.learn(key, spend)
        return spend

    def take(self) -> list[Call]:
        """The queued settles, now flying until `landed`."""
        calls, self.queue = self.queue, []
        self.taken += 1
        flying = self.flying
        for key, _, _ in calls:
            flying[key] = flying.get(key, 0) + 1
        self.sending += len(calls)
        return calls

    def landed(self, calls: list[Call]) -> None:
        """Their pipeline answered or failed (those Redis may not have are kept by then)."""
        flying = self.flying
        for key, _, _ in calls:
            if (left := flying[key] - 1) > 0:
                flying[key] = left
            else:
                del flying[key]
        self.sending -= len(calls)
        if self.waiting:
            self._landed.set()
            self._landed = trio.Event()

    async def wait_landed(self, key: str) -> None:
        """Until no settle of `key` is flying: an admission sent on another connection may
        have reached Redis before them, and been refused a slot or budget they give back
        (they are sent ahead of any later admission of this proxy that carries them, but one
        on another connection may overtake them; `RedisCounters.ordered` asks again)."""
        self.waiting += 1
        try:
            while key in self.flying:
                await self._landed.wait()
        finally:
            self.waiting -= 1

    def learn(self, key: str, spend: Spend) -> None:
        """A settled spend seen for `key` (a reply, or our own settle): `known` only rises."""
        old = self.known.pop(key, None)
        if old is not None:
            spend = Spend(max(old.tokens, spend.tokens), max(old.cost_usd, spend.cost_usd))
        elif len(self.known) >= MAX_KNOWN:
            del self.known[next(iter(self.known))]
        self.known[key] = spend

    async def wait(self) -> None:
        """Until a settle is queued."""
        while not self.queue:
            self._wake, self._waiting = trio.Event(), True
            try:
                await self._wake.wait()
            finally:
                self._waiting = False
