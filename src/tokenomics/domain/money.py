"""How a cost is shown, in one place: `ledger` tables, the `run` summary line and the admin UI.

A rollup (ledger totals, by_model, ..., or `/stats` totals) holds `cost_usd` (the sum over its
priced requests; null when none was priced), `request_count` and `unpriced_count`:

* `n/a` when nothing in it was priced: no amount would be true;
* `$0.0123+` when some requests had no price and others did: the amount is a lower bound;
* else the amount: cents for a dollar and more (`$1,234.57`), at least four decimals and three
  significant digits below (`$0.0123`, `$0.00309`, `$0.000000120`), `$0.0000` for nothing.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping

NOT_PRICED = "n/a"
_SIGNIFICANT = 3
_MAX_DECIMALS = 10  # costs are kept to 10 decimals


def format_dollars(amount: float) -> str:
    """A non-negative amount of US dollars; small amounts keep three significant digits."""
    if amount >= 1:
        return f"${amount:,.2f}"
    decimals = 4
    if amount > 0:
        leading = -math.floor(math.log10(amount))  # 0.003 -> 3
        decimals = min(max(decimals, leading + _SIGNIFICANT - 1), _MAX_DECIMALS)
    return f"${amount:.{decimals}f}"


def _number(rollup: Mapping[str, Any], key: str) -> float | None:
    value = rollup.get(key)
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _count(rollup: Mapping[str, Any], key: str) -> int:
    """A count; the `run` line's are differences of `/stats` figures, as floats."""
    return max(int(_number(rollup, key) or 0), 0)


def format_cost(rollup: Mapping[str, Any]) -> str:
    """`$0.0123`, `$0.0123+` (a lower bound: some requests had no price) or `n/a` (none had)."""
    cost = _number(rollup, "cost_usd")
    requests, unpriced = _count(rollup, "request_count"), _count(rollup, "unpriced_count")
    if cost is None or 0 < requests <= unpriced:
        return NOT_PRICED
    return format_dollars(max(cost, 0.0)) + ("+" if unpriced else "")


def describe_cost(rollup: Mapping[str, Any]) -> str:
    """The cost and, when some requests had no price, how many: `$0.0123+ (2 requests
    without a price)`, `n/a (6 requests without a price)`."""
    unpriced = _count(rollup, "unpriced_count")
    note = f" ({unpriced:,} request{'s' * (unpriced != 1)} without a price)" if unpriced else ""
    return format_cost(rollup) + note
