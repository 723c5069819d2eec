"""What the pipeline needs from the outside, passed in explicitly (no globals)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

    from tokenomics.config.providers import ProviderConfig
    from tokenomics.config.settings import Settings
    from tokenomics.domain.budget import Budgets
    from tokenomics.domain.counters import Counters
    from tokenomics.domain.pricing import PriceTable
    from tokenomics.domain.ratelimit import RateLimiter
    from tokenomics.domain.run_budget import RunBudget
    from tokenomics.domain.tokens import HashKey
    from tokenomics.formats.estimate import TokenEstimator
    from tokenomics.pipeline.exchange import Exchange
    from tokenomics.store.tokens import TokenRecord
    from tokenomics.upstream.client import Upstreams


class TokenLookup(Protocol):
    def lookup(self, token_hash: str) -> TokenRecord | None: ...


class Recorder(Protocol):
    """Receives every finished exchange exactly once (stats, logs, ledger); waits only for room
    in the bounded channel of the record consumers (back-pressure, nothing dropped)."""

    def record_now(self, exchange: Exchange) -> Awaitable[None] | None:
        """Record without a checkpoint; what is left to await when a channel is full."""
        ...


@dataclass(frozen=True, slots=True)
class Deps:
    settings: Settings
    environ: Mapping[str, str]
    tokens: TokenLookup
    hash_key: HashKey
    providers: Mapping[str, ProviderConfig]
    limiter: RateLimiter
    budgets: Budgets  # the in-process counters (also behind `counters` with the memory backend)
    estimator: TokenEstimator
    prices: PriceTable
    upstreams: Upstreams
    recorder: Recorder
    now: Callable[[], float]  # wall clock, seconds since the epoch
    counters: Counters | None = None  # budget/rate state; None: `LocalCounters(budgets, limiter)`
    run_budget: RunBudget | None = None  # the limits of `tokenomics run --max-*`
