"""`proxy.md` §2.11, §6 W-C3, §7 scenarios 35-38 at the budget level; decisions D13-D15."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from tokenomics.domain.budget import Budgets, Reservation, Spend, format_usd
from tokenomics.domain.errors import BudgetExceeded

A, B = "a" * 64, "b" * 64


def reserve(
    budgets: Budgets,
    key: str = A,
    *,
    max_tokens: int = 0,
    max_cost_usd: float = 0.0,
    input_tokens: int = 0,
    cost_estimate_usd: float = 0.0,
) -> Reservation:
    return budgets.reserve(
        key,
        max_tokens=max_tokens,
        max_cost_usd=max_cost_usd,
        input_tokens=input_tokens,
        cost_estimate_usd=cost_estimate_usd,
    )


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


# ── token budgets ────────────────────────────────────────────────────────────────────────────


def test_request_over_a_tiny_budget_is_refused_and_nothing_is_reserved() -> None:
    budgets = Budgets()
    with pytest.raises(BudgetExceeded) as info:
        reserve(budgets, max_tokens=1, input_tokens=12)
    err = info.value
    assert err.status == 429
    assert err.message == "budget exceeded: used 0 + input 12 > limit 1"
    assert (err.kind, err.used, err.requested, err.limit) == ("tokens", 0, 12, 1)
    assert budgets.used(A) == Spend()
    assert budgets.statistics().reservations == 0


def test_reaching_the_limit_exactly_passes_and_the_next_token_does_not() -> None:
    budgets = Budgets()
    reserve(budgets, max_tokens=10, input_tokens=10)
    assert budgets.used(A) == Spend(10, 0.0)
    with pytest.raises(BudgetExceeded, match=r"^budget exceeded: used 10 \+ input 1 > limit 10$"):
        reserve(budgets, max_tokens=10, input_tokens=1)


def test_persisted_usage_counts_against_the_limit() -> None:
    budgets = Budgets({A: Spend(100, 0.25)})
    with pytest.raises(BudgetExceeded, match=r"used 100 \+ input 5 > limit 104"):
        reserve(budgets, max_tokens=104, input_tokens=5)
    reserve(budgets, max_tokens=105, input_tokens=5)
    assert budgets.used(A) == Spend(105, 0.25)


def test_the_counter_is_per_token_and_shared_by_all_models() -> None:
    budgets = Budgets()
    reserve(budgets, A, max_tokens=10, input_tokens=8).settle(8, 0.0)
    reserve(budgets, B, max_tokens=10, input_tokens=8)  # another token: its own counter
    # A provider policy with a higher limit compares against the same counter of A.
    reserve(budgets, A, max_tokens=20, input_tokens=8)
    with pytest.raises(BudgetExceeded, match="used 16"):
        reserve(budgets, A, max_tokens=10, input_tokens=1)


def test_fifty_reservations_against_a_budget_for_ten_admit_exactly_ten() -> None:
    budgets = Budgets()
    admitted = refused = 0
    for _ in range(50):
        try:
            reserve(budgets, max_tokens=100, input_tokens=10)
        except BudgetExceeded:
            refused += 1
        else:
            admitted += 1
    assert (admitted, refused) == (10, 40)
    assert budgets.used(A).tokens == 100


async def test_fifty_concurrent_requests_against_a_budget_for_ten_admit_exactly_ten(
    autojump_clock: trio.testing.MockClock,
) -> None:
    budgets = Budgets()
    outcomes: list[int] = []

    async def request(n: int) -> None:
        await trio.sleep(n % 3 / 10)
        try:
            reservation = reserve(budgets, max_tokens=100, input_tokens=10)
        except BudgetExceeded:
            outcomes.append(429)
            return
        await trio.sleep(1)  # the upstream call
        reservation.settle(10, 0.0)
        outcomes.append(200)

    async with trio.open_nursery() as nursery:
        for n in range(50):
            nursery.start_soon(request, n)
    assert (outcomes.count(200), outcomes.count(429)) == (10, 40)
    assert budgets.used(A) == Spend(100, 0.0)


# ── reservations ─────────────────────────────────────────────────────────────────────────────


def test_release_after_a_failed_request_frees_the_budget_for_the_next_one() -> None:
    budgets = Budgets()
    reservation = reserve(budgets, max_tokens=10, input_tokens=10, cost_estimate_usd=0.01)
    reservation.release()  # e.g. the upstream was unreachable (502) or the key env unset
    assert budgets.used(A) == Spend()
    reserve(budgets, max_tokens=10, input_tokens=10)


def test_leaving_the_block_on_an_error_releases_the_reservation() -> None:
    budgets = Budgets()
    with (
        pytest.raises(RuntimeError),
        reserve(budgets, max_tokens=10, input_tokens=10),
    ):
        raise RuntimeError("upstream failed")
    assert budgets.used(A) == Spend()
    with reserve(budgets, max_tokens=10, input_tokens=10) as reservation:
        reservation.settle(15, 0.5)
    assert budgets.used(A) == Spend(15, 0.5)


def test_settle_replaces_the_estimate_with_the_actual_usage() -> None:
    budgets = Budgets()
    reservation = reserve(budgets, max_tokens=100, input_tokens=40, cost_estimate_usd=0.004)
    assert budgets.used(A) == Spend(40, 0.004)
    reservation.settle(35 + 20, 0.0021)
    assert budgets.used(A) == Spend(55, 0.0021)
    assert not reservation.open


def test_output_is_never_capped_and_the_next_request_is_refused() -> None:
    budgets = Budgets()
    reserve(budgets, max_tokens=20, input_tokens=10).settle(500, 0.0)
    assert budgets.used(A).tokens == 500
    with pytest.raises(BudgetExceeded, match=r"used 500 \+ input 1 > limit 20"):
        reserve(budgets, max_tokens=20, input_tokens=1)


def test_settle_and_release_are_idempotent_and_exclusive() -> None:
    budgets = Budgets()
    settled = reserve(budgets, input_tokens=10)
    settled.settle(30, 0.3)
    settled.settle(99, 9.9)
    settled.release()
    released = reserve(budgets, input_tokens=10, cost_estimate_usd=0.1)
    released.release()
    released.release()
    released.settle(99, 9.9)
    assert budgets.used(A) == Spend(30, 0.3)
    assert budgets.statistics().reservations == 0


def test_usage_is_accounted_without_any_limit() -> None:
    budgets = Budgets()
    reservation = reserve(budgets, input_tokens=7, cost_estimate_usd=0.01)
    assert budgets.used(A) == Spend(7, 0.01)
    reservation.settle(7 + 5, 0.012)
    assert budgets.used(A) == Spend(12, 0.012)


def test_open_reservations_count_against_the_limit() -> None:
    budgets = Budgets()
    first = reserve(budgets, max_tokens=10, input_tokens=6)
    with pytest.raises(BudgetExceeded, match=r"used 6 \+ input 6 > limit 10"):
        reserve(budgets, max_tokens=10, input_tokens=6)
    assert budgets.statistics().reservations == 1
    first.release()
    reserve(budgets, max_tokens=10, input_tokens=6)


# ── cost budgets (D15) ───────────────────────────────────────────────────────────────────────


def test_cost_at_the_limit_passes_and_beyond_it_is_refused() -> None:
    budgets = Budgets()
    reserve(budgets, max_cost_usd=0.01, cost_estimate_usd=0.01)
    with pytest.raises(BudgetExceeded) as info:
        reserve(budgets, max_cost_usd=0.01, cost_estimate_usd=0.000001)
    err = info.value
    assert err.status == 429
    assert err.message == "cost budget exceeded: used $0.01 + estimated $0.000001 > limit $0.01"
    assert (err.kind, err.used, err.requested, err.limit) == ("cost", 0.01, 0.000001, 0.01)


def test_cost_sums_do_not_suffer_from_float_rounding() -> None:
    budgets = Budgets()
    reserve(budgets, max_cost_usd=0.3, cost_estimate_usd=0.1).settle(0, 0.1)
    reserve(budgets, max_cost_usd=0.3, cost_estimate_usd=0.2)  # 0.1 + 0.2 == 0.3 passes
    assert budgets.used(A).cost_usd == 0.3
    for _ in range(1000):
        reserve(budgets, cost_estimate_usd=0.1).release()
    assert budgets.used(A).cost_usd == 0.3


def test_token_and_cost_limits_are_checked_only_when_set() -> None:
    budgets = Budgets({A: Spend(1000, 5.0)})
    reserve(budgets, max_tokens=0, max_cost_usd=0, input_tokens=10, cost_estimate_usd=1)
    reserve(budgets, max_tokens=2000, max_cost_usd=0, input_tokens=10, cost_estimate_usd=1)
    with pytest.raises(BudgetExceeded, match=r"^cost budget exceeded: used \$7 \+ estimated"):
        reserve(budgets, max_tokens=2000, max_cost_usd=7.5, input_tokens=10, cost_estimate_usd=1)
    with pytest.raises(BudgetExceeded, match=r"^budget exceeded: used 1020"):
        reserve(budgets, max_tokens=1020, max_cost_usd=100, input_tokens=10, cost_estimate_usd=1)


@pytest.mark.parametrize(
    ("value", "text"),
    [(0.5, "0.5"), (2.0, "2"), (0.0, "0"), (0.1234567, "0.123457"), (12.30, "12.3"), (1e-7, "0")],
)
def test_dollars_are_printed_with_up_to_six_decimals(value: float, text: str) -> None:
    assert format_usd(value) == text


# ── persistence hand-off ─────────────────────────────────────────────────────────────────────


def test_take_dirty_returns_the_totals_changed_since_the_last_call() -> None:
    budgets = Budgets({B: Spend(5, 0.5)})
    assert budgets.take_dirty() == {}
    reserve(budgets, A, input_tokens=3).settle(4, 0.04)
    assert budgets.take_dirty() == {A: Spend(4, 0.04)}
    assert budgets.take_dirty() == {}
    reserve(budgets, B, input_tokens=1).release()
    assert budgets.take_dirty() == {}  # held amounts are never persisted
    reserve(budgets, B, input_tokens=1).settle(1, 0.5)
    assert budgets.take_dirty() == {B: Spend(6, 1.0)}


def test_marked_dirty_keys_come_back_with_their_newest_totals() -> None:
    budgets = Budgets()
    reserve(budgets, A, input_tokens=3).settle(3, 0.0)
    failed_save = budgets.take_dirty()
    reserve(budgets, A, input_tokens=2).settle(2, 0.0)
    budgets.mark_dirty(failed_save)
    assert budgets.statistics().dirty == 1
    assert budgets.take_dirty() == {A: Spend(5, 0.0)}


def test_reset_starts_again_from_zero() -> None:
    budgets = Budgets({A: Spend(100, 1.0)})
    budgets.take_dirty()
    open_reservation = reserve(budgets, input_tokens=10)
    budgets.reset(A)
    assert budgets.used(A) == Spend()
    assert budgets.take_dirty() == {A: Spend()}
    open_reservation.release()
    assert budgets.used(A) == Spend()  # never negative
    budgets.reset(B)
    assert budgets.statistics().keys == 1


def test_statistics_count_keys_reservations_and_dirty_totals() -> None:
    budgets = Budgets({A: Spend(1, 0.0)})
    reserve(budgets, B, input_tokens=1).settle(1, 0.0)
    reserve(budgets, B, input_tokens=1)
    stats = budgets.statistics()
    assert (stats.keys, stats.reservations, stats.dirty) == (2, 1, 1)


# ── output caps (issue 12 item 5) ────────────────────────────────────────────────────────────


def test_the_output_cap_is_held_until_settled_and_never_persisted() -> None:
    budgets = Budgets()
    held = budgets.reserve(
        A, max_tokens=1000, max_cost_usd=1.0, input_tokens=10, cost_estimate_usd=0.01,
        output_tokens=200, output_cost_usd=0.2,
    )  # fmt: skip
    assert budgets.used(A) == Spend(210, 0.21)
    assert budgets.settled(A) == Spend()
    assert budgets.take_dirty() == {}
    with pytest.raises(BudgetExceeded, match=r"^budget exceeded: used 210 \+ input 800 > limit"):
        reserve(budgets, max_tokens=1000, input_tokens=800)
    held.settle(60, 0.05)
    assert budgets.used(A) == budgets.settled(A) == Spend(60, 0.05)
    assert budgets.take_dirty() == {A: Spend(60, 0.05)}


def test_restore_raises_the_settled_spend_to_the_journal_and_never_lowers_it() -> None:
    budgets = Budgets({A: Spend(100, 1.0), B: Spend(500, 5.0)})
    open_reservation = reserve(budgets, A, input_tokens=50)
    budgets.restore({A: Spend(120, 0.5), B: Spend(400, 4.0), "c" * 64: Spend(7, 0.07)})
    assert budgets.settled(A) == Spend(120, 1.0)
    assert budgets.used(A) == Spend(170, 1.0)
    assert budgets.settled(B) == Spend(500, 5.0)
    assert budgets.take_dirty() == {A: Spend(120, 1.0), "c" * 64: Spend(7, 0.07)}
    open_reservation.release()
    assert budgets.used(A) == Spend(120, 1.0)


# Each step: reserve (input estimate, output cap, a label), or settle the open reservation at
# the given index with a fraction of its input estimate and of its output cap.
_steps = st.lists(
    st.one_of(
        st.tuples(st.just("reserve"), st.integers(0, 60), st.integers(0, 300)),
        st.tuples(st.just("settle"), st.integers(0, 50), st.floats(0, 1), st.floats(0, 1)),
    ),
    max_size=80,
)


@given(limit=st.integers(1, 2000), steps=_steps)
def test_spend_never_passes_the_limit_by_more_than_one_requests_output(
    limit: int, steps: list[tuple[Any, ...]]
) -> None:
    """Any interleaving of admissions and settlements, actual usage within each request's input
    estimate and output cap: the spend stays within limit + the largest single output."""
    budgets = Budgets()
    price = 1e-6  # a dollar per million tokens, in and out: the cost limit mirrors the tokens
    open_: list[tuple[Reservation, int, int]] = []
    largest_output = 0
    for step in [*steps, *(("settle", 0, 1.0, 1.0),) * 80]:
        if step[0] == "reserve":
            _, estimate, cap = step
            try:
                held = budgets.reserve(
                    A, max_tokens=limit, max_cost_usd=limit * price, input_tokens=estimate,
                    cost_estimate_usd=estimate * price, output_tokens=cap,
                    output_cost_usd=cap * price,
                )  # fmt: skip
            except BudgetExceeded:
                continue
            open_.append((held, estimate, cap))
        elif open_:
            held, estimate, cap = open_.pop(step[1] % len(open_))
            inputs, output = int(estimate * step[2]), int(cap * step[3])
            largest_output = max(largest_output, output)
            held.settle(inputs + output, (inputs + output) * price)
        spent = budgets.settled(A)
        assert spent.tokens <= limit + largest_output
        assert spent.cost_usd <= (limit + largest_output) * price + 1e-9
    assert budgets.used(A) == budgets.settled(A)
