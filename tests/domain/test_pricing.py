"""Prices, lenient model-name lookup and cost in USD (hand-computed, and against the formula
as first written on generated usage)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokenomics.domain.pricing import Price, PriceTable, cost_usd
from tokenomics.domain.usage import Usage

GPT_4O = Price(2.50, 10.00, cached_input=1.25)
SONNET = Price(3.00, 15.00, cached_input=0.30, cache_write=3.75)
O4_MINI = Price(1.10, 4.40, cached_input=0.275)

TABLE = PriceTable(
    {
        "gpt-4o": GPT_4O,
        "gpt-4o-mini": Price(0.15, 0.60, cached_input=0.075),
        "gpt-4": Price(30.0, 60.0),
        "o3": Price(2.0, 8.0),
        "o3-pro": Price(20.0, 80.0),
        "claude-sonnet-4-5": SONNET,
        "claude-3-7-sonnet": SONNET,
        "gemini-2.5-pro": Price(1.25, 10.0, cached_input=0.125),
        "gemini-2.0-flash": Price(0.10, 0.40),
        "mistral-large": Price(2.0, 6.0),
        "Command-R": Price(0.15, 0.60),
    }
)


# ── cost ─────────────────────────────────────────────────────────────────────────────────────


def test_cost_with_cached_input_and_reasoning_inside_output() -> None:
    # 1000 input of which 400 cached; 500 output of which 200 reasoning (not added again).
    usage = Usage(
        input_tokens=1000, output_tokens=500, cached_input_tokens=400, reasoning_tokens=200
    )
    # (600 * 2.50 + 400 * 1.25 + 500 * 10.00) / 1e6 = (1500 + 500 + 5000) / 1e6
    assert cost_usd(usage, GPT_4O) == 0.007


def test_anthropic_cost_with_cache_reads_and_writes() -> None:
    usage = Usage(
        input_tokens=25 + 2000 + 100,
        output_tokens=15,
        cached_input_tokens=2000,
        cache_creation_tokens=100,
    )
    # (25 * 3 + 2000 * 0.30 + 100 * 3.75 + 15 * 15) / 1e6 = (75 + 600 + 375 + 225) / 1e6
    assert cost_usd(usage, SONNET) == 0.001275


def test_reasoning_tokens_are_paid_once_as_output() -> None:
    usage = Usage(input_tokens=0, output_tokens=1000, reasoning_tokens=800)
    assert cost_usd(usage, O4_MINI) == 0.0044


def test_cost_is_rounded_to_ten_decimals() -> None:
    usage = Usage(input_tokens=7, output_tokens=3)
    # (7 * 0.15 + 3 * 0.60) / 1e6 = 2.85e-06
    assert cost_usd(usage, Price(0.15, 0.60)) == 0.00000285
    # 1 * 0.01234 / 1e6 = 1.234e-08 -> 0.0000000123 at ten decimals
    assert cost_usd(Usage(input_tokens=1), Price(0.01234, 0.15)) == 0.0000000123


def test_unknown_price_is_none_never_zero() -> None:
    assert cost_usd(Usage(input_tokens=10, output_tokens=10), None) is None


def test_free_model_costs_zero() -> None:
    assert cost_usd(Usage(input_tokens=10, output_tokens=10), Price(0, 0)) == 0.0


def test_cached_figures_larger_than_input_never_give_negative_uncached() -> None:
    usage = Usage(input_tokens=10, cached_input_tokens=50)
    assert cost_usd(usage, GPT_4O) == round(50 * 1.25 / 1e6, 10)


# ── Price ────────────────────────────────────────────────────────────────────────────────────


def test_cache_prices_default_to_the_input_price() -> None:
    price = Price(2, 8)
    assert (price.input, price.output, price.cached_input, price.cache_write) == (
        2.0,
        8.0,
        2.0,
        2.0,
    )
    assert Price(2, 8, cached_input=0) == Price(2.0, 8.0, cached_input=0.0, cache_write=2.0)


@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf])
def test_negative_or_non_finite_prices_are_rejected(bad: float) -> None:
    with pytest.raises(ValueError, match="cached_input"):
        Price(1, 1, cached_input=bad)
    with pytest.raises(ValueError, match="input"):
        Price(bad, 1)


def test_price_is_frozen() -> None:
    with pytest.raises(AttributeError):
        GPT_4O.input = 1.0  # type: ignore[misc]


# ── lookup ───────────────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("model", "known"),
    [
        ("gpt-4o", "gpt-4o"),
        ("GPT-4o", "gpt-4o"),
        ("openai/gpt-4o", "gpt-4o"),
        ("models/gemini-2.5-pro", "gemini-2.5-pro"),
        ("google/gemini-2.5-pro", "gemini-2.5-pro"),
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("claude-sonnet-4-5@20250929", "claude-sonnet-4-5"),
        ("claude-3-7-sonnet-latest", "claude-3-7-sonnet"),
        ("anthropic/claude-sonnet-4.5", "claude-sonnet-4-5"),
        ("anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4-5"),
        ("mistral-large-latest", "mistral-large"),
        ("mistral-large-2411", "mistral-large"),
        ("gemini-2.0-flash-001", "gemini-2.0-flash"),
        ("gpt-4-0613", "gpt-4"),
        ("command-r-08-2024", "command-r"),
        ("o3-pro-2025-06-10", "o3-pro"),
        ("o3-2025-04-16", "o3"),
        ("gpt-4o-mini-search-preview", "gpt-4o-mini"),
        ("gpt-4o-audio-preview-2024-12-17", "gpt-4o"),
    ],
)
def test_lookup_normalises_names(model: str, known: str) -> None:
    assert TABLE.lookup(model) is TABLE.lookup(known)
    assert TABLE.lookup(known) is not None


@pytest.mark.parametrize(
    "model",
    [
        "llama3.2",
        "gpt-4.5-preview",
        "o30",
        "gpt-4omni",
        "mistral",
        "deepseek-ai/DeepSeek-V3",
        "",
        "latest",
    ],
)
def test_unknown_models_have_no_price(model: str) -> None:
    assert TABLE.lookup(model) is None


def test_prefix_match_needs_a_separator_after_the_known_name() -> None:
    # gpt-4 is known but gpt-4o-realtime is not a gpt-4 variant; it is priced as gpt-4o.
    assert TABLE.lookup("gpt-4o-realtime") == GPT_4O
    assert TABLE.lookup("gpt-4-turbo") == Price(30.0, 60.0)


def test_longest_known_prefix_wins() -> None:
    assert TABLE.lookup("o3-pro-deep-research") == Price(20.0, 80.0)
    assert TABLE.lookup("o3-deep-research") == Price(2.0, 8.0)


def test_table_is_case_insensitive_and_sized() -> None:
    assert "command-r" in TABLE
    assert "COMMAND-R" in TABLE
    assert len(TABLE) == 11
    assert "command-r" in list(TABLE)


def reference_cost(usage: Usage, price: Price | None) -> float | None:
    """The formula as first written (`max`, `total_tokens`): the cheaper one gives the same."""
    if usage.total_tokens == 0:
        return 0.0
    if price is None:
        return None
    cached, written = usage.cached_input_tokens, usage.cache_creation_tokens
    uncached = max(usage.input_tokens - cached - written, 0)
    micro = (
        uncached * price.input
        + cached * price.cached_input
        + written * price.cache_write
        + usage.output_tokens * price.output
    )
    return round(micro / 1_000_000, 10)


COUNT = st.integers(0, 3) | st.integers(0, 10**9)
RATE = st.floats(0, 1000)


@given(
    usage=st.builds(Usage, COUNT, COUNT, COUNT, COUNT, COUNT, st.booleans()),
    price=st.none() | st.builds(Price, RATE, RATE, st.none() | RATE, st.none() | RATE),
)
def test_the_cost_is_the_reference_formulas(usage: Usage, price: Price | None) -> None:
    assert cost_usd(usage, price) == reference_cost(usage, price)
