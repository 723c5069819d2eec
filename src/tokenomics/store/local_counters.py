"""The in-process counters backend (`session.backend: memory`): `Budgets` and `RateLimiter`
in this process, the budget totals written through to SQLite by `services.usage_writer`.

Every step is synchronous underneath (no checkpoint), so it is as fast as calling the domain
objects directly and no other task can interleave with a check-and-reserve.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tokenomics.domain.budget import Reservation
from tokenomics.domain.counters import Ask, CountersHealth, Outcome

if TYPE_CHECKING:
    from tokenomics.domain.budget import Budgets, Spend
    from tokenomics.domain.counters import Claim
    from tokenomics.domain.policy import RateLimit
    from tokenomics.domain.ratelimit import Permit, RateLimiter


class LocalSlot:
    __slots__ = ("key", "permit")

    def __init__(self, key: str, permit: Permit) -> None:
        self.key = key
        self.permit = permit


class LocalCounters:
    backend = "memory"
    one_step_admission = False  # nothing to save: the stages keep acquire and reserve apart

    def __init__(self, budgets: Budgets, limiter: RateLimiter) -> None:
        self.budgets = budgets
        self.limiter = limiter

    async def acquire(self, key: str, limit: RateLimit | None) -> Claim:
        return self.acquire_now(key, limit)

    async def reserve(self, key: str, ask: Ask) -> Claim:
        return self.reserve_now(key, ask)

    def acquire_now(self, key: str, limit: RateLimit | None) -> LocalSlot:
        """`acquire` without a coroutine (the stages call it directly: `stages._acquire`)."""
        return LocalSlot(key, self.limiter.acquire(key, limit))

    def reserve_now(self, key: str, ask: Ask) -> Reservation:
        """`reserve` without a coroutine (`stages._reserve`)."""
        return self.budgets.reserve(
            key,
            max_tokens=ask.max_tokens,
            max_cost_usd=ask.max_cost_usd,
            input_tokens=ask.input_tokens,
            cost_estimate_usd=ask.cost_estimate_usd,
            output_tokens=ask.output_tokens,
            output_cost_usd=ask.output_cost_usd,
        )

    async def admit(
        self, key: str, limit: RateLimit | None, ask: Ask, *, bound: bool = False
    ) -> tuple[Claim, Claim]:
        if bound:  # the budget first: its refusal at a bound takes nothing
            reservation = await self.reserve(key, ask)
            try:
                return LocalSlot(key, self.limiter.acquire(key, limit)), reservation
            except BaseException:
                if isinstance(reservation, Reservation):
                    reservation.release()
                raise
        slot = LocalSlot(key, self.limiter.acquire(key, limit))
        try:
            return slot, await self.reserve(key, ask)
        except BaseException:
            slot.permit.release()
            raise

    async def settle(
        self,
        key: str,
        limit: RateLimit | None,
        slot: Claim | None,
        reservation: Claim | None,
        outcome: Outcome,
    ) -> Spend | None:
        return self.settle_now(
            key, limit, slot, reservation, outcome.committed, outcome.tokens, outcome.cost_usd
        )

    def settle_now(
        self,
        key: str,
        limit: RateLimit | None,
        slot: Claim | None,
        reservation: Claim | None,
        committed: bool,
        tokens: int,
        cost_usd: float,
    ) -> Spend | None:
        """`settle` without a checkpoint (`pipeline.finish.settle_now`), the outcome's fields
        passed as they are."""
        spend = None
        if isinstance(reservation, Reservation):
            if committed:
                reservation.settle(tokens, cost_usd)
            else:
                reservation.release()
            spend = self.budgets.settled(key)
        permit = slot.permit if isinstance(slot, LocalSlot) else None
        if tokens or permit is not None:  # the tokens and the slot at one reading of the clock
            self.limiter.finish(key, limit, tokens, permit)
        return spend

    def health(self) -> CountersHealth:
        return CountersHealth("memory", True)
