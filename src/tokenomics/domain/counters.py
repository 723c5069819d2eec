"""Where budget and rate-limit state lives, behind one small async interface (`design.md`,
"Counters behind one interface"; decisions D14, D16).

The stages call `acquire` (rate limits and `max_parallel`, checked and taken in one step),
`reserve` (a budget check and its reservation, one step), or `admit` (both, one step, when the
backend says it is cheaper: `one_step_admission`) and, once the exchange ends, `settle`
(the reservation replaced by the actual usage, token windows fed, the parallel slot given back).
They never know which backend runs: `store.local_counters` (in-process, persisted to SQLite) or
`store.redis_counters` (shared by every proxy and worker, one Lua script per step).

What a request holds between the steps is an opaque `Claim` each backend fills in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from tokenomics.domain.budget import Spend
    from tokenomics.domain.policy import RateLimit


# `Ask` and `Outcome` are built for every request and never changed after: plain slots
# dataclasses, as a frozen one's `__init__` costs ~5x (`object.__setattr__` per field: ~10k
# instructions for an `Ask`, more than the reservation it asks for).
@dataclass(slots=True)
class Ask:
    """A budget check-and-reserve: the limits (0 = none) and what the request may spend."""

    max_tokens: int
    max_cost_usd: float
    input_tokens: int
    cost_estimate_usd: float
    output_tokens: int = 0
    output_cost_usd: float = 0.0

    @property
    def limited(self) -> bool:
        return self.max_tokens > 0 or self.max_cost_usd > 0


@dataclass(slots=True)
class Outcome:
    """How the exchange ended: `committed` when an upstream response was accepted (the
    reservation is replaced by `tokens`/`cost_usd`), else it is released."""

    committed: bool
    tokens: int
    cost_usd: float


class Claim(Protocol):
    """A parallel slot or a budget reservation held by one request."""

    @property
    def key(self) -> str: ...


@dataclass(frozen=True, slots=True)
class CountersHealth:
    backend: str  # "memory" | "redis"
    ok: bool
    detail: str = ""
    pending: int = 0  # settlements waiting for the backend to come back


class Counters(Protocol):
    backend: str
    # Whether `admit` costs less than `acquire` then `reserve` (one round trip instead of two):
    # the stages then defer the rate limit to the budget step when a policy needs both.
    one_step_admission: bool

    async def acquire(self, key: str, limit: RateLimit | None) -> Claim:
        """Check every rate limit and take a parallel slot, atomically; raises `RateLimited`,
        or `RedisUnavailable` (503) when the shared state cannot be reached."""
        ...

    async def reserve(self, key: str, ask: Ask) -> Claim:
        """Check the budget and reserve, atomically; raises `BudgetExceeded` (429) or
        `RedisUnavailable` (503)."""
        ...

    async def admit(
        self, key: str, limit: RateLimit | None, ask: Ask, *, bound: bool = False
    ) -> tuple[Claim, Claim]:
        """`acquire` then `reserve` as one step: (slot, reservation). A rate refusal takes
        nothing; a budget refusal leaves the request counted in the rate windows, as the two
        steps do, and the slot not held. With `bound` (the ask's input is a bound of the
        estimate, which the caller asks with next if this is refused), a budget refusal takes
        nothing either: the ask with the estimate counts the request once."""
        ...

    async def settle(
        self,
        key: str,
        limit: RateLimit | None,
        slot: Claim | None,
        reservation: Claim | None,
        outcome: Outcome,
    ) -> Spend | None:
        """End the request: settle or release the reservation, add the usage to the token
        windows, give the slot back; returns the key's settled spend when known. Never raises
        for an unreachable backend: what could not be applied is kept and applied later."""
        ...

    def health(self) -> CountersHealth: ...
