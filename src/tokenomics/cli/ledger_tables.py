"""Plain tables of the `ledger` commands: aligned like Go's tabwriter (each cell padded to the
widest in its column plus two spaces), the `Totals:` block and the rollup tables."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tokenomics.domain.money import describe_cost, format_cost

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from tokenomics.cli.context import Context

NONE = "No sessions found.\n"
ROLLUP_HEADER = ("NAME", "REQUESTS", "INPUT", "OUTPUT", "TOTAL", "COST")
LABEL = 16


def tabwrite(rows: Sequence[Sequence[str]], indent: str = "") -> list[str]:
    """Rows aligned like Go's tabwriter with padding 2 (the last column is not padded)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return [
        (indent + "".join(c.ljust(w + 2) for c, w in zip(row, widths, strict=False)) + row[-1])
        .rstrip()
        for row in rows
    ]  # fmt: skip


def count(rollup: Mapping[str, Any], key: str) -> int:
    value = rollup.get(key, 0)
    return value if isinstance(value, int) else 0


def totals_block(totals: Mapping[str, Any], *, full: bool) -> list[str]:
    """The `Totals:` lines; `full` (summary) adds Cache creation and Retries."""
    lines = [("Requests", "request_count"), ("Input tokens", "input_tokens")]
    lines += [("Output tokens", "output_tokens"), ("Total tokens", "total_tokens")]
    optional = [("Cached input", "cached_input_tokens")]
    optional += [("Cache creation", "cache_creation_tokens")] if full else []
    optional += [("Reasoning", "reasoning_tokens"), ("Errors", "error_count")]
    optional += [("Retries", "retry_count")] if full else []
    shown = lines + [(label, key) for label, key in optional if count(totals, key) > 0]
    out = ["Totals:", *(f"  {label:<{LABEL}}{count(totals, key)}" for label, key in shown)]
    return [*out, f"  {'Cost':<{LABEL}}{describe_cost(totals)}"]


def rollup_table(title: str, rollups: Mapping[str, Mapping[str, Any]]) -> list[str]:
    if not rollups:
        return []
    rows: list[Sequence[str]] = [ROLLUP_HEADER]
    for name in sorted(rollups):
        r = rollups[name]
        counts = (str(count(r, k)) for k in ("request_count", "input_tokens", "output_tokens"))
        rows.append((name or "(none)", *counts, str(count(r, "total_tokens")), format_cost(r)))
    return ["", f"{title}:", *tabwrite(rows, "  ")]


def write_lines(ctx: Context, lines: Sequence[str]) -> None:
    ctx.stdout.write("".join(f"{line}\n" for line in lines))
