"""`domain.run_budget`: the run's own check-and-reserve counters (sans-I/O)."""

from __future__ import annotations

import pytest

from tokenomics.domain.errors import RunBudgetExceeded
from tokenomics.domain.run_budget import RunBudget, RunLimits, format_seconds


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_reservations_hold_the_output_until_settled_and_release_gives_all_back() -> None:
    budget = RunBudget(RunLimits(max_tokens=100, max_requests=5), Clock())
    first = budget.reserve(
        input_tokens=40, output_tokens=50, cost_estimate_usd=0, output_cost_usd=0
    )
    # concurrent requests see the first at its maximum: 90 + 20 > 100
    with pytest.raises(RunBudgetExceeded) as refused:
        budget.reserve(input_tokens=20, output_tokens=50, cost_estimate_usd=0, output_cost_usd=0)
    assert refused.value.status == 429 and refused.value.kind == "tokens"
    assert (
        str(refused.value)
        == "run budget exceeded: 100 max tokens for this run (used 90 + input 20)"
    )
    first.settle(45, 0.0)
    assert (budget.tokens, budget.requests) == (45, 1)
    first.release()  # after settle: no effect
    assert (budget.tokens, budget.requests) == (45, 1)
    second = budget.reserve(
        input_tokens=55, output_tokens=10, cost_estimate_usd=0, output_cost_usd=0
    )
    second.release()  # no upstream response: tokens and the request's count go back
    assert (budget.tokens, budget.requests) == (45, 1)
    assert (budget.capped, budget.refused) == ("100 max tokens", 1)


def test_reaching_a_limit_exactly_passes_and_costs_do_not_drift() -> None:
    budget = RunBudget(RunLimits(max_cost_usd=0.3), Clock())
    for _ in range(3):
        budget.reserve(
            input_tokens=1, output_tokens=0, cost_estimate_usd=0.1, output_cost_usd=0
        ).settle(1, 0.1)
    assert budget.cost_usd == pytest.approx(0.3)
    with pytest.raises(RunBudgetExceeded, match=r"\$0\.3000 max cost for this run"):
        budget.reserve(input_tokens=1, output_tokens=0, cost_estimate_usd=1e-9, output_cost_usd=0)


def test_duration_counts_from_start() -> None:
    clock = Clock()
    budget = RunBudget(RunLimits(max_duration=90), clock)
    clock.now += 80
    budget.start()
    clock.now += 89.9
    budget.check_time()
    clock.now += 0.1
    with pytest.raises(RunBudgetExceeded, match="1m30s max duration"):
        budget.check_time()
    assert budget.summary() == ", capped by the run budget (1m30s max duration; 1 request refused)"


def test_describe_and_format_seconds() -> None:
    limits = RunLimits(max_cost_usd=2.5, max_tokens=500_000, max_requests=7, max_duration=1800)
    assert limits.describe() == (
        "$2.50 max cost, 500,000 max tokens, 7 max requests, 30m max duration"
    )
    assert not RunLimits().any
    assert [format_seconds(s) for s in (30, 90, 3600, 5400, 0.5)] == [
        "30s",
        "1m30s",
        "1h",
        "1h30m",
        "0.5s",
    ]
