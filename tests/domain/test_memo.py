"""`memo.remember`: a table never holds more than its limit, and keeps what it was given."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tokenomics.domain.memo import remember


@given(st.lists(st.integers(0, 50)), st.integers(1, 10))
def test_a_table_stays_within_its_limit_and_holds_the_last_value(
    keys: list[int], limit: int
) -> None:
    table: dict[int, str] = {}
    for key in keys:
        assert remember(table, key, f"v{key}", limit) == f"v{key}"
        assert len(table) <= limit and table[key] == f"v{key}"
