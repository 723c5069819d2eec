"""`--since/--until` bounds (`domain/ledger_range.py`): dates, RFC 3339 times, durations back
from now, the end of an `--until` day, and clear errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tokenomics.domain.errors import DurationError
from tokenomics.domain.ledger_range import parse_bound

NOW = datetime(2026, 12, 6, 15, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "until", "expected"),
    [
        ("2026-12-01", False, datetime(2026, 12, 1, tzinfo=UTC)),
        ("2026-12-01", True, datetime(2026, 12, 2, tzinfo=UTC)),  # the whole day
        ("2026-12-01T10:00:00+02:00", False, datetime(2026, 12, 1, 8, tzinfo=UTC)),
        ("2026-12-01T10:00:00.5Z", True, datetime(2026, 12, 1, 10, 0, 0, 500000, tzinfo=UTC)),
        ("7d", False, NOW - timedelta(days=7)),
        ("2w", False, NOW - timedelta(days=14)),
        ("12h", True, NOW - timedelta(hours=12)),
        ("1h30m", False, NOW - timedelta(minutes=90)),
        (" 90m ", False, NOW - timedelta(minutes=90)),
    ],
)
def test_bounds(text: str, until: bool, expected: datetime) -> None:
    assert parse_bound(text, NOW, until=until) == expected


@pytest.mark.parametrize("text", ["yesterday", "-7d", "2026-13-01", "7", "", "2026-12-01 10:00"])
def test_invalid_bounds_name_the_forms(text: str) -> None:
    with pytest.raises(DurationError, match=r"invalid (time|date)"):
        parse_bound(text, NOW)


def test_a_duration_past_year_one_is_an_error_not_a_crash() -> None:
    with pytest.raises(DurationError, match="too long"):
        parse_bound("999999w", NOW)
    with pytest.raises(DurationError, match="too long"):
        parse_bound("99999999999999h", NOW)
