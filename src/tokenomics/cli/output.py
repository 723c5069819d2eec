"""Printing for commands: plain lines, JSON for scripts, rich tables on a terminal."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TextIO

import orjson


def print_json(out: TextIO, value: Any) -> None:
    out.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")


def is_terminal(out: TextIO) -> bool:
    isatty = getattr(out, "isatty", None)
    return bool(isatty and isatty())


def print_table(
    out: TextIO,
    title: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    width: int | None = None,
) -> None:
    """A rich table; at most `width` columns wide when given (else the terminal's width)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, title_justify="left", header_style="bold")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*row)
    width = width or (None if is_terminal(out) else 200)
    Console(file=out, force_terminal=is_terminal(out), width=width).print(table)
