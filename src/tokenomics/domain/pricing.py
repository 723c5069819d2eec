"""Prices per model and the cost of a request in USD (decision D15).

A model without a price has no cost (`None`), never a silent 0. Names are matched leniently:
provider prefixes (`openai/gpt-4o`, `models/gemini-2.5-pro`), date and version suffixes
(`gpt-4o-2024-08-06`, `claude-sonnet-4-5-20250929`, `-latest`, `-001`) and finally the longest
known prefix ending at a separator (`gpt-4o-mini-search-preview` -> `gpt-4o-mini`).
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from tokenomics.domain.usage import Usage

# Suffixes stripped one at a time from the end of a name, until a known name appears.
_SUFFIXES = re.compile(
    r"(?:[-@]\d{4}-?\d{2}-?\d{2}"  # -2024-08-06, -20250929, @20250929
    r"|-\d{2}-\d{2,4}"  # -05-20 (preview dates), -03-2025
    r"|-\d{3,4}"  # -001, -0613, -2411
    r"|-latest|-preview|-exp|-v\d+(?::\d+)?|:\d+)$"
)
_VENDOR = re.compile(r"(?:[a-z]+\.)+")  # Bedrock: anthropic.claude-…, us.meta.llama…
_SEPARATORS = ("-", "_", ":", "@", "/")
_MEMO_SIZE = 4096


@dataclass(frozen=True, slots=True, init=False)
class Price:
    """USD per million tokens. Cached input and cache writes default to the input price."""

    input: float
    output: float
    cached_input: float
    cache_write: float

    def __init__(
        self,
        input: float,
        output: float,
        cached_input: float | None = None,
        cache_write: float | None = None,
    ) -> None:
        values = {
            "input": input,
            "output": output,
            "cached_input": input if cached_input is None else cached_input,
            "cache_write": input if cache_write is None else cache_write,
        }
        for name, value in values.items():
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"price field {name} must be a finite number >= 0, got {value}")
            object.__setattr__(self, name, float(value))


class PriceTable:
    """Model name -> `Price`, with lenient lookup. The prices never change after construction;
    only a memo of the lookups made grows (bounded)."""

    __slots__ = ("_by_length", "_lookup", "_prices")

    def __init__(self, prices: Mapping[str, Price]) -> None:
        self._prices = {name.lower(): price for name, price in prices.items()}
        self._by_length = sorted(self._prices, key=len, reverse=True)
        # Lookups already made (twice per request; an unpriced model scans the whole table).
        self._lookup = functools.lru_cache(maxsize=_MEMO_SIZE)(self._search)

    def __len__(self) -> int:
        return len(self._prices)

    def __iter__(self) -> Iterator[str]:
        return iter(self._prices)

    def __contains__(self, model: object) -> bool:
        return isinstance(model, str) and model.lower() in self._prices

    def lookup(self, model: str) -> Price | None:
        """The price of `model`: exact, without provider prefix, without suffixes, by prefix."""
        return self._lookup(model)

    def _search(self, model: str) -> Price | None:
        forms = _name_forms(model.strip().lower())
        dashed = forms[-1].replace(".", "-")  # openrouter's claude-sonnet-4.5; exact match only
        for form in (*forms, dashed):
            if form in self._prices:
                return self._prices[form]
        for known in self._by_length:  # longest first
            for form in forms:
                if form[len(known) : len(known) + 1] in _SEPARATORS and form.startswith(known):
                    return self._prices[known]
        return None


def _name_forms(name: str) -> list[str]:
    """`name`, then without provider prefix, then with each suffix stripped in turn."""
    forms = [name]
    bare = name.rsplit("/", 1)[-1]
    bare = bare[vendor.end() :] if (vendor := _VENDOR.match(bare)) else bare
    if bare != name:
        forms.append(bare)
    while bare and (match := _SUFFIXES.search(bare)) and match.start() > 0:
        bare = bare[: match.start()]
        forms.append(bare)
    return forms


def cost_usd(usage: Usage, price: Price | None) -> float | None:
    """Cost of `usage` at `price` in USD (10 decimals); None when the price is unknown and
    tokens were used (a request that used none costs nothing, priced or not)."""
    inputs = usage.input_tokens
    if inputs + usage.output_tokens == 0:  # `total_tokens`, without the property's call
        return 0.0
    if price is None:
        return None
    cached = usage.cached_input_tokens
    written = usage.cache_creation_tokens
    uncached = inputs - cached - written
    micro = (
        (uncached if uncached > 0 else 0) * price.input
        + cached * price.cached_input
        + written * price.cache_write
        + usage.output_tokens * price.output
    )
    return round10(micro / 1_000_000)


_MAGIC = 6755399441055744.0  # 1.5 * 2**52: adding and taking it away rounds to an integer
_FAST_BELOW = 1099511627776.0  # 2**40: whole ten-billionths the fast path is exact for
_NEAR_HALF = 0.4997  # farther from a tie than this: the product's error cannot move it


def round10(amount: float) -> float:
    """`round(amount, 10)`, the same float, at a third of its cost for the usual amounts
    (`round` with digits formats and parses a decimal string; once per request). `scaled`
    (< 2**40) is within 2**-14 of the exact ten-billionths, so when it is not within 0.0003 of
    a tie its nearest integer is the one `round` finds, and the quotient of two exact floats is
    the float nearest that decimal, as `round` returns. Ties, large or negative amounts, NaN
    and zeros (-0.0 keeps its sign) take `round` itself (`tests/domain/test_round10.py`)."""
    scaled = amount * 1e10
    whole = scaled + _MAGIC - _MAGIC
    if 0.0 < scaled < _FAST_BELOW and -_NEAR_HALF < scaled - whole < _NEAR_HALF:
        return whole / 1e10
    return round(amount, 10)
