"""What `ledger summary` and `ledger top` show, built from the ledger index's aggregates.

Pure: group keys and `Aggregate`s in, JSON-shaped dicts and table cells out. `classic` rebuilds
the original `ledger summary --json` object (`cli.md` §7.8) from the groups by model, by
provider and by token; `grouped` is the object of `summary --by ...`; `ranked` orders groups
for `top`: by cost (the priced part), then by tokens. A token is shown by the first
`TOKEN_PREFIX` characters of its hash, like the communication events do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tokenomics.domain.ledger_rows import Aggregate

if TYPE_CHECKING:
    from collections.abc import Sequence

Group = tuple[tuple[str, ...], Aggregate]
TOKEN_PREFIX = 16
CSV_COLUMNS = (
    "request_count", "input_tokens", "output_tokens", "total_tokens", "cached_input_tokens",
    "cache_creation_tokens", "reasoning_tokens", "cost_usd", "unpriced_count", "estimated_count",
)  # fmt: skip


def shown_key(by: str, value: str) -> str:
    return value[:TOKEN_PREFIX] if by == "token" else value


def total(groups: Sequence[Group]) -> Aggregate:
    out = Aggregate()
    for _, aggregate in groups:
        out.add(aggregate)
    return out


def _named(groups: Sequence[Group], *, skip_empty: bool = False) -> dict[str, Any]:
    rollups = {key[0]: a.as_rollup() for key, a in groups if key[0] or not skip_empty}
    return {name: rollups[name] for name in sorted(rollups)}


def classic(
    sessions: int, by_model: Sequence[Group], by_provider: Sequence[Group],
    by_token: Sequence[Group],
) -> dict[str, Any]:  # fmt: skip
    """The `ledger summary --json` object from the groups by model, by provider and by token
    (each adds up to every request: the totals are those of any one)."""
    return {
        "sessions": sessions,
        "totals": total(by_provider).as_totals(),
        "by_model": _named(by_model),
        "by_provider": _named(by_provider, skip_empty=True),
        "by_token": _named(by_token),
    }


def grouped(
    sessions: int, by: Sequence[str], groups: Sequence[Group], bounds: dict[str, str]
) -> dict[str, Any]:
    """The `ledger summary --by ... --json` object: groups in key order."""
    rows = [
        {**{k: shown_key(k, v) for k, v in zip(by, key, strict=True)}, **a.as_rollup()}
        for key, a in sorted(groups, key=lambda g: g[0])
    ]
    return {
        "sessions": sessions, "by": list(by), **bounds,
        "totals": total(groups).as_totals(), "groups": rows,
    }  # fmt: skip


def ranked(groups: Sequence[Group], limit: int) -> list[Group]:
    """The `limit` most expensive groups (priced cost, then tokens, then key)."""

    def order(group: Group) -> tuple[float, int, tuple[str, ...]]:
        a = group[1]
        return (-a.cost_usd, -(a.input_tokens + a.output_tokens), group[0])

    return sorted(groups, key=order)[: max(limit, 0)]


def csv_cells(rollup: dict[str, Any]) -> list[str]:
    """The CSV_COLUMNS of a rollup; an unknown cost is an empty cell, absent counts 0."""
    cells = []
    for column in CSV_COLUMNS:
        value = rollup.get(column, 0)
        cells.append(
            "" if value is None else repr(value) if isinstance(value, float) else str(value)
        )
    return cells
