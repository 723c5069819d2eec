"""The per-day spend chart `ledger summary` draws on a terminal (rich; never when piped).

One bar per calendar day, up to `DAYS` days ending with the last one that had requests, scaled to
the most expensive of them, with each day's cost (`domain.money`: `$0.0123+` when some of its
requests had no price, `n/a` when none had).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import TYPE_CHECKING, Any, TextIO

from tokenomics.domain.money import format_cost

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

DAYS = 31
WIDTH = 40
_EIGHTHS = " ▏▎▍▌▋▊▉"


def bar(value: float, peak: float, width: int = WIDTH) -> str:
    """A horizontal bar of `value` against `peak` in eighths of a cell."""
    if peak <= 0 or value <= 0:
        return ""
    eighths = max(1, round(min(value / peak, 1.0) * width * 8))
    full, part = divmod(eighths, 8)
    return "█" * full + (_EIGHTHS[part] if part else "")


def _filled(days: Sequence[tuple[str, Mapping[str, Any]]]) -> list[tuple[str, Mapping[str, Any]]]:
    """The last DAYS calendar days up to the latest one given, days without requests at $0."""
    known = dict(days)
    if not known:
        return []
    last = date.fromisoformat(max(known))
    first = max(date.fromisoformat(min(known)), last - timedelta(days=DAYS - 1))
    span = (last - first).days + 1
    names = [(first + timedelta(days=i)).isoformat() for i in range(span)]
    return [(name, known.get(name, {"cost_usd": 0.0, "request_count": 0})) for name in names]


def chart_rows(days: Sequence[tuple[str, Mapping[str, Any]]]) -> list[tuple[str, str, str]]:
    """(day, bar, cost) for each of the last DAYS days up to the latest one given."""
    shown = _filled(days)
    costs = [float(rollup.get("cost_usd") or 0.0) for _, rollup in shown]
    peak = max(costs, default=0.0)
    return [
        (day, bar(cost, peak), format_cost(rollup))
        for (day, rollup), cost in zip(shown, costs, strict=True)
    ]


def print_chart(out: TextIO, days: Sequence[tuple[str, Mapping[str, Any]]]) -> None:
    from rich.console import Console
    from rich.table import Table

    rows = chart_rows(days)
    if not rows:
        return
    table = Table(
        title="Spend per day (UTC)", title_justify="left", show_header=False, box=None,
        pad_edge=False,
    )  # fmt: skip
    table.add_column("day", style="dim")
    table.add_column("bar", style="cyan", no_wrap=True)
    table.add_column("cost", justify="right")
    for row in rows:
        table.add_row(*row)
    Console(file=out, force_terminal=True).print(table)
