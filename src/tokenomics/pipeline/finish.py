"""The end of every exchange, exactly once: settle the budget, feed token windows, release the
parallel slot, price the request and hand it to the recorder (which journals it at once and
may wait for room in the record channel)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tokenomics.domain.counters import Outcome
from tokenomics.domain.pricing import cost_usd
from tokenomics.domain.usage import Usage, merge_estimate
from tokenomics.pipeline.exchange import Settled
from tokenomics.pipeline.stages import counters, estimate_input, exact_input

if TYPE_CHECKING:
    from tokenomics.pipeline.deps import Deps
    from tokenomics.pipeline.exchange import Exchange


def final_usage(ex: Exchange, deps: Deps) -> Usage:
    """What the request consumed: provider figures, estimates where the provider said nothing.

    Token counting endpoints consume nothing (their answer is a count, not usage).
    """
    if not _consumed(ex):
        return Usage()
    if _needs_input_estimate(ex):
        ex.input_estimate = estimate_input(ex, deps)
    return merge_estimate(ex.usage, ex.input_estimate, 0)


def _consumed(ex: Exchange) -> bool:
    adapter = ex.route.adapter if ex.route else None
    return ex.upstream is not None and (adapter is None or adapter.budgeted)


def _needs_input_estimate(ex: Exchange) -> bool:
    """The provider reported no input and we have not counted it yet."""
    return (ex.usage is None or ex.usage.input_tokens == 0) and not ex.input_estimate


async def finish(ex: Exchange, deps: Deps) -> None:
    """Called exactly once per exchange, by the request's life (`run.py`)."""
    if _consumed(ex) and _needs_input_estimate(ex):  # its vocabulary, off the event loop
        ex.input_estimate = await exact_input(ex, deps)
    usage = final_usage(ex, deps)
    model = (ex.meta.actual_model if ex.meta else "") or ex.attempt_model or ex.model
    price = cost_usd(usage, deps.prices.lookup(model)) if ex.upstream else 0.0
    spend = None
    if ex.reservation is not None or ex.permit is not None or usage.total_tokens:
        outcome = Outcome(ex.upstream is not None, usage.total_tokens, price or 0.0)
        limit = ex.policy.rate_limit if ex.policy is not None else None
        settled = await counters(deps).settle(
            ex.token_hash, limit, ex.permit, ex.reservation, outcome
        )
        if ex.reservation is not None:
            spend = settled
    if ex.run_reservation is not None:
        if ex.upstream is not None:
            ex.run_reservation.settle(usage.total_tokens, price or 0.0)
        else:
            ex.run_reservation.release()
    ex.settle(Settled(usage, price, spend))
    await deps.recorder.record(ex)
