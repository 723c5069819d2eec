"""One cost formatter for `ledger`, the `run` line and the admin UI (issue 13, item 9):
significant digits for small amounts, `+` for a lower bound, `n/a` when nothing was priced."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokenomics.domain.money import describe_cost, format_cost, format_dollars


@pytest.mark.parametrize(
    ("amount", "text"),
    [
        (0.0, "$0.0000"),
        (0.0135, "$0.0135"),
        (0.5, "$0.5000"),
        (0.003093, "$0.00309"),  # was $0.0031: three significant digits
        (0.00000012, "$0.000000120"),  # was $0.0000
        (1e-12, "$0.0000000000"),  # below the 10 decimals costs are kept to
        (1.0, "$1.00"),
        (1234.5678, "$1,234.57"),
    ],
)
def test_amounts(amount: float, text: str) -> None:
    assert format_dollars(amount) == text


@pytest.mark.parametrize(
    ("rollup", "text"),
    [
        ({"cost_usd": 0.0135, "request_count": 2}, "$0.0135"),
        ({"cost_usd": 0.0135, "request_count": 3, "unpriced_count": 1}, "$0.0135+"),
        ({"cost_usd": None, "request_count": 6, "unpriced_count": 6}, "n/a"),
        ({"cost_usd": 0.0, "request_count": 6, "unpriced_count": 6}, "n/a"),  # /stats, older files
        ({"cost_usd": 0.0, "request_count": 0}, "$0.0000"),
        ({"request_count": 1}, "n/a"),
        ({"cost_usd": True, "request_count": 1}, "n/a"),
        ({"cost_usd": math.nan, "request_count": 1}, "n/a"),
        ({"cost_usd": "0.1", "request_count": 1}, "n/a"),
        ({"cost_usd": 0.25, "request_count": 3.0, "unpriced_count": 1.0}, "$0.2500+"),  # run line
    ],
)
def test_rollups(rollup: dict[str, object], text: str) -> None:
    assert format_cost(rollup) == text


def test_the_note_says_how_many_requests_had_no_price() -> None:
    assert describe_cost({"cost_usd": 0.01, "request_count": 2}) == "$0.0100"
    one = {"cost_usd": 0.01, "request_count": 2, "unpriced_count": 1}
    assert describe_cost(one) == "$0.0100+ (1 request without a price)"
    none = {"cost_usd": None, "request_count": 1200, "unpriced_count": 1200}
    assert describe_cost(none) == "n/a (1,200 requests without a price)"


amounts = st.floats(min_value=0, max_value=1e9, allow_nan=False)


@given(amounts)
def test_an_amount_reads_back_to_three_significant_digits(amount: float) -> None:
    text = format_dollars(amount)
    assert text.startswith("$")
    shown = float(text[1:].replace(",", ""))
    if amount >= 1:
        assert abs(shown - amount) <= 0.005 + 1e-9 * amount
    elif amount >= 1e-8:  # three significant digits fit in 10 decimals
        assert shown == pytest.approx(amount, rel=5e-3)
    else:
        assert abs(shown - amount) <= 5e-11
    assert shown > 0 or amount < 5e-11


@given(
    cost=st.one_of(st.none(), amounts),
    priced=st.integers(0, 10**6),
    unpriced=st.integers(0, 10**6),
)
def test_na_only_when_nothing_was_priced_and_plus_only_for_a_lower_bound(
    cost: float | None, priced: int, unpriced: int
) -> None:
    rollup = {"cost_usd": cost, "request_count": priced + unpriced, "unpriced_count": unpriced}
    text = format_cost(rollup)
    if cost is None or (unpriced and not priced):
        assert text == "n/a"
    else:
        assert text.startswith("$") and text.endswith("+") == bool(unpriced)
        assert text.rstrip("+") == format_dollars(cost)
