"""`round10`, the fast `round(amount, 10)` of a request's cost, returns the very float `round`
does (the reference, `round` with digits), sign included: for any float, for the costs a price
table makes (token counts times prices per million), and around ties (k + 1/2 ten-billionths),
where the fast path must step aside."""

from __future__ import annotations

import math
import struct

from hypothesis import example, given, settings
from hypothesis import strategies as st

from tokenomics.domain.pricing import Price, cost_usd, round10
from tokenomics.domain.usage import Usage


def reference_round10(amount: float) -> float:
    return round(amount, 10)


def same(a: float, b: float) -> bool:
    """Bit for bit: -0.0 is not 0.0, NaN is NaN."""
    return struct.pack("<d", a) == struct.pack("<d", b)


@settings(max_examples=3000)
@given(st.floats(allow_nan=True, allow_infinity=True))
@example(0.0)
@example(-0.0)
@example(1e-11)
@example(5e-11)
@example(1.5e-10)
@example(2.5e-10)
@example(109.95116277759999)
@example(109.9511627776)
@example(1e300)
def test_any_float(amount: float) -> None:
    assert same(round10(amount), reference_round10(amount))


@settings(max_examples=3000)
@given(
    st.integers(min_value=0, max_value=10**15),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.sampled_from([1e10, 1e9, 1e8, 1e6, 1e4, 1.0]),
    st.integers(min_value=-3, max_value=3),
)
def test_near_ties(k: int, nudge: int, scale: float, ulps: int) -> None:
    """Amounts at and next to k + 1/2 (and k) units of 1/scale, a few floats either way."""
    for base in ((k + 0.5) / scale, k / scale, (k * 2 + 1) / 2e10 + nudge * 1e-16):
        amount = base
        for _ in range(abs(ulps)):
            amount = math.nextafter(amount, math.inf if ulps > 0 else -math.inf)
        assert same(round10(amount), reference_round10(amount))
        assert same(round10(-amount), reference_round10(-amount))


PRICES = st.floats(min_value=0, max_value=1000, allow_nan=False) | st.sampled_from(
    [0.0, 0.1, 0.15, 0.25, 0.3, 0.6, 1.1, 2.5, 3.0, 4.4, 10.0, 15.0, 75.0]
)
TOKENS = st.integers(min_value=0, max_value=10**7) | st.integers(min_value=0, max_value=10**13)


@settings(max_examples=3000)
@given(TOKENS, TOKENS, TOKENS, TOKENS, PRICES, PRICES, PRICES, PRICES)
def test_costs(
    inputs: int, outputs: int, cached: int, written: int, pin: float, pout: float, pc: float,
    pw: float,
) -> None:  # fmt: skip
    usage = Usage(
        input_tokens=inputs,
        output_tokens=outputs,
        cached_input_tokens=cached,
        cache_creation_tokens=written,
    )
    price = Price(pin, pout, pc, pw)
    uncached = inputs - cached - written
    micro = (
        (uncached if uncached > 0 else 0) * price.input
        + cached * price.cached_input
        + written * price.cache_write
        + outputs * price.output
    )
    expected = 0.0 if inputs + outputs == 0 else reference_round10(micro / 1_000_000)
    got = cost_usd(usage, price)
    assert got is not None
    assert same(got, expected)
