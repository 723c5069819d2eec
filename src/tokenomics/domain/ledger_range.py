"""The time bounds of `ledger summary|top|export --since/--until`.

A bound is a date (`2026-12-01`, midnight UTC), an RFC 3339 timestamp, or a duration back from
now (`7d`, `12h`, `90m`, `2w`, or Go's grammar `1h30m`). `--until` with a date means the end of
that day, so `--since 2026-12-01 --until 2026-12-01` is the whole day; the range is half-open
(`since <= t < until`).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

from tokenomics.domain.durations import parse_go_duration, parse_rfc3339
from tokenomics.domain.errors import DurationError

_DAYS_WEEKS = re.compile(r"(\d{1,6})([dw])")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _back(text: str) -> timedelta | None:
    if match := _DAYS_WEEKS.fullmatch(text):
        return timedelta(days=int(match.group(1)) * (7 if match.group(2) == "w" else 1))
    delta = parse_go_duration(text) if text and text[0] not in "+-" else None
    return delta if delta is not None and delta >= timedelta(0) else None


def parse_bound(text: str, now: datetime, *, until: bool = False) -> datetime:
    """The moment `text` names; raises DurationError naming the accepted forms."""
    value = text.strip()
    if _DATE.fullmatch(value):
        try:
            day = date.fromisoformat(value)
        except ValueError:
            raise DurationError(f'invalid date "{text}"') from None
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        return start + timedelta(days=1) if until else start
    if moment := parse_rfc3339(value):
        return moment.astimezone(UTC)
    try:
        delta = _back(value)
        if delta is not None:
            return now - delta
    except OverflowError:
        raise DurationError(f'duration "{text}" is too long') from None
    raise DurationError(
        f'invalid time "{text}": use a date (2026-12-01), an RFC 3339 timestamp, or a '
        "duration back from now (7d, 12h, 2w)"
    )
