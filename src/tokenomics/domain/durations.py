"""Durations and timestamps: Go-style durations, token expiry values, rate-limit windows.

Pure functions; the current time is always passed in.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from tokenomics.domain.errors import DurationError
from tokenomics.domain.memo import remember

_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_GO_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_DAYS = re.compile(r"(\d+)d")
_YEARS = re.compile(r"(\d+)y")
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")

EXPIRES_HELP = "use a duration (24h, 7d, 30d, 1y), RFC3339 timestamp, or 'clear'"


def parse_go_duration(text: str) -> timedelta | None:
    """Parse Go's duration grammar (`90s`, `1h30m`, `-5m`, `1.5h`, `0`); None when invalid."""
    body = text
    sign = 1.0
    if body[:1] in "+-" and body:
        sign = -1.0 if body[0] == "-" else 1.0
        body = body[1:]
    if body == "0":
        return timedelta(0)
    if not body:
        return None
    seconds = 0.0
    pos = 0
    while pos < len(body):
        part = _GO_PART.match(body, pos)
        if part is None:
            return None
        seconds += float(part.group(1)) * _UNITS[part.group(2)]
        pos = part.end()
    return timedelta(seconds=sign * seconds)


def parse_rfc3339(text: str) -> datetime | None:
    """A timezone-aware datetime for a strict RFC 3339 timestamp, else None."""
    if not _RFC3339.fullmatch(text):
        return None
    try:
        return datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
    except ValueError:
        return None


def format_rfc3339(moment: datetime) -> str:
    """UTC, whole seconds, `Z` suffix: `2025-01-02T03:04:05Z`. (These run several times per
    recorded request: the part to the second is formatted once per second, `_second`.)"""
    return _second(moment)[0] + "Z"


def format_rfc3339_ms(moment: datetime) -> str:
    """UTC with milliseconds: `2025-01-02T03:04:05.678Z`."""
    text, micros = _second(moment)
    return f"{text}.{micros // 1000:03d}Z"


def format_rfc3339_nano(moment: datetime) -> str:
    """UTC with nanoseconds, Go's RFC3339Nano width (Python keeps microseconds; the last 3
    digits are 0): `2025-01-02T03:04:05.678901000Z`. (Once per journaled request: the
    fraction from `_DIGITS`, not a format spec, which costs ~3x.)"""
    text, micros = _second(moment)
    return f"{text}.{_DIGITS[micros // 1000]}{_DIGITS[micros % 1000]}000Z"


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# `2025-01-02T03:04:05` by whole seconds since the epoch: timestamps repeat their second, and
# `isoformat` costs ~4x what this lookup does.
_SECONDS: dict[int, str] = {}
SECONDS_LIMIT = 64
_DIGITS = tuple(f"{n:03d}" for n in range(1000))  # "000" to "999"


def _second(moment: datetime) -> tuple[str, int]:
    """The moment in UTC to the second (`2025-01-02T03:04:05`), and its microseconds. A naive
    moment is local time (like `astimezone`)."""
    if moment.tzinfo is not UTC:  # the common case (`datetime.now(UTC)`): no conversion
        moment = moment.astimezone(UTC)
    delta = moment - _EPOCH
    key = delta.days * 86400 + delta.seconds
    text = _SECONDS.get(key)
    if text is None:
        text = moment.replace(tzinfo=None).isoformat(timespec="seconds")
        remember(_SECONDS, key, text, SECONDS_LIMIT)
    return text, moment.microsecond


def _add_years(moment: datetime, years: int) -> datetime:
    try:
        return moment.replace(year=moment.year + years)
    except ValueError:  # 29 February in a year without one
        return moment.replace(year=moment.year + years, day=28)


def parse_expires(value: str, now: datetime) -> str | None:
    """Normalise an `--expires` value.

    Returns None for "no expiry" (empty), the literal "clear", an RFC 3339 timestamp verbatim,
    or now + duration formatted as UTC RFC 3339 for `7d`, `1y`, `24h`, `90m`, ...
    """
    value = value.strip()
    if value == "":
        return None
    if value == "clear":
        return "clear"
    if parse_rfc3339(value) is not None:
        return value
    invalid = DurationError(f'invalid expiration "{value}": {EXPIRES_HELP}')
    if days := _DAYS.fullmatch(value):
        count = int(days.group(1))
        if count <= 0:
            raise invalid
        return format_rfc3339(now + timedelta(days=count))
    if years := _YEARS.fullmatch(value):
        count = int(years.group(1))
        if count <= 0:
            raise invalid
        return format_rfc3339(_add_years(now.astimezone(UTC), count))
    delta = parse_go_duration(value)
    if delta is None:
        raise invalid
    if delta <= timedelta(0):
        raise DurationError(f"expiration must be positive, got {value}")
    return format_rfc3339(now + delta)


def parse_window(value: str) -> timedelta:
    """A rate-limit window: Go duration or `Nd`; empty means one minute; must be positive."""
    if value == "":
        return timedelta(minutes=1)
    if days := _DAYS.fullmatch(value):
        delta: timedelta | None = timedelta(days=int(days.group(1)))
    else:
        delta = parse_go_duration(value)
    if delta is None or delta <= timedelta(0):
        raise DurationError(f'invalid window "{value}"')
    return delta


# Expiry timestamps already read (a token's, on each of its requests), None: unreadable.
_EXPIRIES: dict[str, datetime | None] = {}
EXPIRIES_LIMIT = 1024


def is_expired(expires_at: str | None, now: datetime) -> bool:
    """Valid while now <= expires_at. An unreadable timestamp counts as expired (fail closed)."""
    if not expires_at:
        return False
    if expires_at in _EXPIRIES:
        moment = _EXPIRIES[expires_at]
    else:
        moment = remember(_EXPIRIES, expires_at, parse_rfc3339(expires_at), EXPIRIES_LIMIT)
    return moment is None or now > moment
