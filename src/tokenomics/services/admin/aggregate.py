"""Ledger numbers kept as plain vectors so they can be added and taken away again: a file's
contribution is added when it is read, the new lines of a growing journal are added as they
come, and a file that is replaced (a journal turned into its session JSON) is taken away.

A vector holds what `domain.ledger.Totals` accumulates for one entry (same rules: an entry
without a numeric `cost_usd` is unpriced, `estimated` counts, status ≥ 400 is an error, …);
output goes through `Totals`/`Rollup.as_dict`, so the shapes and the unpriced/estimated rules
are the ledger's own. `tests/admin_api/test_analytics.py` checks the two agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from operator import add, sub
from typing import TYPE_CHECKING, Any

from tokenomics.domain.ledger import Rollup, Totals

if TYPE_CHECKING:
    from collections.abc import Mapping

Vector = list[float]
(COUNT, INPUT, OUTPUT, CACHED, CREATION, REASONING, COST, UNPRICED, ESTIMATED, ERRORS, RETRIES,
 VIOLATIONS, LIMITED) = range(13)  # fmt: skip
SIZE = 13
_EXTRA = (("cached_input_tokens", CACHED), ("cache_creation_tokens", CREATION),
          ("reasoning_tokens", REASONING))  # fmt: skip


def _int(value: Any) -> int:
    return value if type(value) is int else 0


def entry_vector(entry: Mapping[str, Any]) -> Vector:
    get = entry.get
    meta = get("provider_meta")
    cached = creation = reasoning = 0
    if type(meta) is dict:
        cached, creation = (
            _int(meta.get("cached_input_tokens")),
            _int(meta.get("cache_creation_tokens")),
        )
        reasoning = _int(meta.get("reasoning_tokens"))
    cost: Any = get("cost_usd")
    unpriced = not (type(cost) is float or type(cost) is int)
    status = _int(get("status_code"))
    matches = get("rule_matches")
    violations = (
        sum(1 for m in matches if type(m) is dict and m.get("action") == "fail")
        if type(matches) is list and matches else 0
    )  # fmt: skip
    return [
        1.0, _int(get("input_tokens")), _int(get("output_tokens")), cached, creation, reasoning,
        0.0 if unpriced else cost, unpriced, 1 if get("estimated") else 0, status >= 400,
        _int(get("retry_count")), violations, status == 429,
    ]  # fmt: skip


def add_into(target: Vector, source: Vector, sign: int = 1) -> None:
    if sign == 1:
        target[:] = map(add, target, source)
    else:
        target[:] = map(sub, target, source)


def _fill(rollup: Rollup, v: Vector) -> None:
    rollup.request_count = int(v[COUNT])
    rollup.input_tokens, rollup.output_tokens = int(v[INPUT]), int(v[OUTPUT])
    rollup.extra = {name: int(v[i]) for name, i in _EXTRA}
    rollup.cost_usd = v[COST]
    rollup.unpriced_count, rollup.estimated_count = int(v[UNPRICED]), int(v[ESTIMATED])


def rollup_dict(v: Vector) -> dict[str, Any]:
    """The UsageRollup shape of `domain.ledger` (cost null when nothing was priced)."""
    rollup = Rollup()
    _fill(rollup, v)
    return rollup.as_dict()


def totals_dict(v: Vector) -> dict[str, Any]:
    totals = Totals()
    _fill(totals, v)
    totals.error_count, totals.retry_count = int(v[ERRORS]), int(v[RETRIES])
    totals.rule_violation_count, totals.rate_limit_count = int(v[VIOLATIONS]), int(v[LIMITED])
    return totals.as_dict()


def new_vector() -> Vector:
    return [0.0] * SIZE


Cell = tuple[str, str, str]  # UTC day, model, provider


@dataclass
class Aggregate:
    """The numbers of a set of ledger entries, by (UTC day, model, provider) cell and by token:
    two additions per entry. Totals and the breakdowns by model, provider, day, day × model and
    day × provider are projections of the (few) cells, made when asked."""

    cells: dict[Cell, Vector] = field(default_factory=dict)
    tokens: dict[str, Vector] = field(default_factory=dict)

    def add_entry(self, entry: Mapping[str, Any]) -> None:
        v = entry_vector(entry)
        get = entry.get
        stamp = get("timestamp")
        cell = (stamp[:10] if type(stamp) is str else "", str(get("model", "")),
                str(get("provider", "")))  # fmt: skip
        found = self.cells.get(cell)
        if found is None:
            self.cells[cell] = v
        else:
            found[:] = map(add, found, v)
        token = str(get("token_hash", ""))
        found = self.tokens.get(token)
        if found is None:
            self.tokens[token] = list(v)
        else:
            found[:] = map(add, found, v)

    def merge(self, other: Aggregate, sign: int = 1) -> None:
        """Add (`sign` 1) or take away (-1) `other`; keys left with no request go."""
        _merge(self.cells, other.cells, sign)
        _merge(self.tokens, other.tokens, sign)

    def totals(self) -> Vector:
        total = new_vector()
        for v in self.cells.values():
            add_into(total, v)
        return total

    def group(self, name: str) -> dict[Any, Vector]:
        """`model`, `provider`, `day`, `day_model` or `day_provider`. Like the ledger's own
        `by_provider`, the provider breakdowns leave out requests without a provider."""
        pick = _PICK[name]
        out: dict[Any, Vector] = {}
        for cell, v in self.cells.items():
            if not cell[2] and name.endswith("provider"):
                continue
            key = pick(cell)
            found = out.get(key)
            if found is None:
                out[key] = list(v)
            else:
                add_into(found, v)
        return out


def _merge(mine: dict[Any, Vector], theirs: dict[Any, Vector], sign: int) -> None:
    for key, v in theirs.items():
        found = mine.get(key)
        if found is None:
            mine[key] = [sign * x for x in v]
            continue
        add_into(found, v, sign)
        if found[COUNT] <= 0:
            del mine[key]


_PICK: dict[str, Any] = {
    "model": lambda c: c[1],
    "provider": lambda c: c[2],
    "day": lambda c: c[0],
    "day_model": lambda c: (c[0], c[1]),
    "day_provider": lambda c: (c[0], c[2]),
}
