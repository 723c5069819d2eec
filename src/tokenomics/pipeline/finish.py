"""The end of every exchange, exactly once, in two halves: `settle_now` prices the request,
settles the budget, feeds token windows and releases the parallel slot (before the reply's
last byte: a client's next request finds its slot free and its spend counted, whatever the
counters' backend); `record_now` hands it to the recorder, which journals it at once and may
wait for room in the record channel (after the last byte, off the reply's path).

Each does its work without a checkpoint when nothing has to be waited for (the vocabulary of
an estimate is loaded, the counters are in-process, the record channel has room): nothing can
cancel it then, so the request's life needs no shielded cancel scope for it (one per request
cost ~3% of the proxy's CPU). Otherwise it returns what is left to await, shielded.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from tokenomics.domain.counters import Outcome
from tokenomics.domain.pricing import cost_usd
from tokenomics.domain.usage import Usage, merge_estimate
from tokenomics.pipeline.exchange import Settled
from tokenomics.pipeline.stages import counters, estimate_input, exact_input
from tokenomics.store.local_counters import LocalCounters

log = logging.getLogger("tokenomics.server")

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from tokenomics.domain.budget import Spend
    from tokenomics.domain.policy import RateLimit
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


def _model(ex: Exchange) -> str:
    return (ex.meta.actual_model if ex.meta else "") or ex.attempt_model or ex.model


def _needs_counters(ex: Exchange, usage: Usage) -> bool:
    return ex.reservation is not None or ex.permit is not None or usage.total_tokens > 0


def settle_now(ex: Exchange, deps: Deps) -> Awaitable[None] | None:
    """The exchange's first half of finishing, called exactly once by the request's life
    (`run.py`): usage, price, the counters and the run's budget settled. None when that was
    done without a checkpoint, else what is left of it to await (shielded)."""
    if (
        _consumed(ex)
        and _needs_input_estimate(ex)
        and deps.estimator.missing(ex.attempt_model or ex.model) is not None
    ):
        return settle(ex, deps)  # the vocabulary loads in a worker thread first
    usage = final_usage(ex, deps)
    price = cost_usd(usage, deps.prices.lookup(_model(ex))) if ex.upstream else 0.0
    backend = counters(deps)
    if not _needs_counters(ex, usage):
        spend = None
    elif isinstance(backend, LocalCounters):  # synchronous underneath
        committed, tokens = ex.upstream is not None, usage.total_tokens
        spend = backend.settle_now(
            ex.token_hash, _limit(ex), ex.permit, ex.reservation, committed, tokens, price or 0.0
        )
    else:
        return _settle_counted(ex, deps, usage, price)
    _settle(ex, usage, price, spend)
    return None


def record_now(ex: Exchange, deps: Deps) -> Awaitable[None] | None:
    """The second half, once settled: the record, handed to the recorder (`record_now`)."""
    return deps.recorder.record_now(ex)


async def settle(ex: Exchange, deps: Deps) -> None:
    """`settle_now`, waiting where it must (the counting vocabulary, the counters backend)."""
    if _consumed(ex) and _needs_input_estimate(ex):  # its vocabulary, off the event loop
        ex.input_estimate = await exact_input(ex, deps)
    usage = final_usage(ex, deps)
    price = cost_usd(usage, deps.prices.lookup(_model(ex))) if ex.upstream else 0.0
    await _settle_counted(ex, deps, usage, price)


async def finish_after_bug(ex: Exchange, deps: Deps) -> None:
    """`settle_now` or `record_now` raised (a bug of ours): the client still gets its reply,
    and the exchange what can be saved. Not settled yet, it is settled with what the provider
    reported, unpriced, so its slot and holds are let go, and recorded with its error.
    Settled, its record was under way when it failed: it is not made a second time (a
    consumer may have it already)."""
    ex.error = ex.error or "internal error"
    if ex.is_settled:
        return
    try:
        await _settle_counted(ex, deps, ex.usage or Usage(), None)
        rest = deps.recorder.record_now(ex)
        if rest is not None:
            await rest
    except Exception:
        log.exception("request %s: its record failed too", ex.request.client_request_id)


async def _settle_counted(ex: Exchange, deps: Deps, usage: Usage, price: float | None) -> None:
    spend = None
    if _needs_counters(ex, usage):
        spend = await counters(deps).settle(
            ex.token_hash, _limit(ex), ex.permit, ex.reservation, _outcome(ex, usage, price)
        )
    _settle(ex, usage, price, spend)


def _limit(ex: Exchange) -> RateLimit | None:
    return ex.policy.rate_limit if ex.policy is not None else None


def _outcome(ex: Exchange, usage: Usage, price: float | None) -> Outcome:
    return Outcome(ex.upstream is not None, usage.total_tokens, price or 0.0)


def _settle(ex: Exchange, usage: Usage, price: float | None, spend: Spend | None) -> None:
    """The run's budget, then the exchange's part 4 (`spend`: the token's settled budget
    counter, kept only when this request held a reservation)."""
    if ex.run_reservation is not None:
        if ex.upstream is not None:
            ex.run_reservation.settle(usage.total_tokens, price or 0.0)
        else:
            ex.run_reservation.release()
    ex.settle(Settled(usage, price, spend if ex.reservation is not None else None))
