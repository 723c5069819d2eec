"""The reserve stage of the run budget (`domain.run_budget`): after the policy's own
`reserve_budget`, with the same estimates (the input counted by us, the request's output cap,
else `DEFAULT_OUTPUT_TOKENS` per choice, priced by the price table). Without a run budget
(`serve`, a `run` without limits) it does nothing."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tokenomics.domain.budget import DEFAULT_OUTPUT_TOKENS
from tokenomics.domain.errors import ProxyError
from tokenomics.pipeline.stages import enforced, exact_input

if TYPE_CHECKING:
    from tokenomics.domain.run_budget import RunBudget, RunReservation
    from tokenomics.pipeline.deps import Deps
    from tokenomics.pipeline.exchange import Exchange


async def reserve_run_budget(ex: Exchange, deps: Deps) -> None:
    budget = deps.run_budget
    if budget is None:
        return
    if not enforced(ex, "budgeted"):  # no tokens spent (model lists, token counts): time only
        budget.check_time()
        return
    limits = budget.limits
    if not (limits.max_tokens or limits.max_cost_usd):
        ex.run_reservation = budget.reserve(
            input_tokens=0, output_tokens=0, cost_estimate_usd=0.0, output_cost_usd=0.0
        )
        return
    ex.input_estimate = ex.input_estimate or await exact_input(ex, deps)
    ex.run_reservation = _reserve(ex, deps, budget)


def _reserve(ex: Exchange, deps: Deps, budget: RunBudget) -> RunReservation:
    limits = budget.limits
    price = deps.prices.lookup(ex.model)
    if price is None and limits.max_cost_usd > 0:
        raise ProxyError(
            403,
            f'model "{ex.model}" has no known price, so the run\'s --max-cost cannot be '
            "enforced; add a price for it under prices: in providers.yaml",
        )
    adapter = ex.route.adapter if ex.route else None
    cap = adapter.output_cap(ex.body or {}, DEFAULT_OUTPUT_TOKENS) if adapter else 0
    cap = cap or DEFAULT_OUTPUT_TOKENS  # a passthrough that names a model: its cap is unknown
    output = min(cap, limits.max_tokens) if limits.max_tokens > 0 else 0
    cost_estimate = output_cost = 0.0
    if price is not None:
        cost_estimate = ex.input_estimate * price.input / 1e6
        if limits.max_cost_usd > 0:
            output_cost = min(cap * price.output / 1e6, limits.max_cost_usd)
    return budget.reserve(
        input_tokens=ex.input_estimate, output_tokens=output,
        cost_estimate_usd=cost_estimate, output_cost_usd=output_cost,
    )  # fmt: skip
