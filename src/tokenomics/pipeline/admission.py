"""Admission in one round trip for a backend that offers it (`Counters.one_step_admission`,
the Redis one): a policy with a rate limit and a budget has its rate limit checked together
with the budget reservation (`Counters.admit`, one Lua script) instead of in a step of its own
before `check_model`, `apply_rules` and `apply_prompts` (the budget's estimate needs the final
body, so the reservation cannot move up).

Nothing a client sees changes: a request those stages refuse still has its rate limit checked
first (`stages.undefer`, one extra round trip on that error path only), so a rate refusal still wins
over theirs and a refused request still counts in the rate windows, exactly as with the
in-process backend; and whatever the deferred stages recorded (events, rule matches, the
error text, the masked body) is undone when the rate limit refuses the request after all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tokenomics.pipeline.exchange import DeferredRate

if TYPE_CHECKING:
    from tokenomics.domain.counters import Counters
    from tokenomics.pipeline.exchange import Exchange


def budget_limited(ex: Exchange, budgeted: bool) -> bool:
    """Whether `reserve_budget` will check a limit (the same test it makes)."""
    assert ex.resolved is not None
    return budgeted and (ex.resolved.max_tokens > 0 or ex.resolved.max_cost_usd > 0)


def defer(ex: Exchange, counters: Counters, budgeted: bool) -> bool:
    """Leave the rate limit for the budget step when that saves a round trip."""
    if not counters.one_step_admission or not budget_limited(ex, budgeted):
        return False
    ex.deferred_rate = DeferredRate(
        len(ex.events), len(ex.rule_matches), ex.error, ex.body, ex.strip_usage
    )
    return True


def restore(ex: Exchange) -> None:
    """The rate limit refused a deferred request after all: undo what the stages after the
    deferred check recorded, so the request ends as if they never ran."""
    state = ex.deferred_rate
    ex.deferred_rate = None
    if state is not None:
        del ex.events[state.events :]
        del ex.rule_matches[state.rule_matches :]
        ex.error, ex.body, ex.strip_usage = state.error, state.body, state.strip_usage
