"""Bounded memo tables: the few values the hot path computes again and again (paths, URLs,
encoded arguments), kept in a plain dict that is emptied when it is full. No eviction order
to keep: a full table is rare (each holds what one proxy's traffic repeats), and refilling it
costs what computing each value once more does."""

from __future__ import annotations

from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")


def remember(table: dict[K, V], key: K, value: V, limit: int) -> V:
    """`value`, now kept under `key`; the table is emptied first when it holds `limit`."""
    if len(table) >= limit:
        table.clear()
    table[key] = value
    return value
