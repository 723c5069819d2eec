from datetime import UTC, datetime, timedelta, timezone

import pytest

from tokenomics.domain import durations
from tokenomics.domain.durations import (
    format_rfc3339,
    format_rfc3339_ms,
    format_rfc3339_nano,
    is_expired,
    parse_expires,
    parse_go_duration,
    parse_rfc3339,
    parse_window,
)
from tokenomics.domain.errors import DurationError

NOW = datetime(2026, 2, 28, 12, 30, 45, 123456, tzinfo=UTC)


def at(text: str | None) -> datetime:
    assert text is not None
    parsed = parse_rfc3339(text)
    assert parsed is not None
    return parsed


@pytest.mark.parametrize(
    ("value", "delta"),
    [("7d", timedelta(days=7)), ("24h", timedelta(hours=24)), ("90m", timedelta(minutes=90)),
     ("1h30m", timedelta(minutes=90)), ("30d", timedelta(days=30)), ("1.5h", timedelta(minutes=90))],
)  # fmt: skip
def test_relative_expiry_is_utc_whole_seconds_from_now(value: str, delta: timedelta) -> None:
    result = parse_expires(value, NOW)
    assert result is not None and result.endswith("Z") and "." not in result
    assert at(result) == (NOW + delta).replace(microsecond=0)


def test_one_year_is_a_calendar_year() -> None:
    assert parse_expires("1y", NOW) == "2027-02-28T12:30:45Z"
    leap = datetime(2028, 2, 29, tzinfo=UTC)
    assert parse_expires("1y", leap) == "2029-02-28T00:00:00Z"


@pytest.mark.parametrize("value", ["0d", "-1d", "1w", "abc", "1.5d", "7xd", "d", "0y", "1h-"])
def test_unparsable_expiry_names_the_accepted_forms(value: str) -> None:
    with pytest.raises(DurationError) as err:
        parse_expires(value, NOW)
    assert str(err.value) == (
        f'invalid expiration "{value}": use a duration (24h, 7d, 30d, 1y), '
        "RFC3339 timestamp, or 'clear'"
    )


@pytest.mark.parametrize("value", ["-5m", "0s", "-1h"])
def test_non_positive_duration_is_refused(value: str) -> None:
    with pytest.raises(DurationError, match=f"^expiration must be positive, got {value}$"):
        parse_expires(value, NOW)


def test_rfc3339_is_kept_verbatim_and_clear_and_empty_pass_through() -> None:
    assert parse_expires("2025-12-31T00:00:00+02:00", NOW) == "2025-12-31T00:00:00+02:00"
    assert parse_expires("2020-01-01T00:00:00Z", NOW) == "2020-01-01T00:00:00Z"
    assert parse_expires("clear", NOW) == "clear"
    assert parse_expires("", NOW) is None


def test_go_durations() -> None:
    assert parse_go_duration("0") == timedelta(0)
    assert parse_go_duration("1h2m3s") == timedelta(hours=1, minutes=2, seconds=3)
    assert parse_go_duration("500ms") == timedelta(milliseconds=500)
    assert parse_go_duration("-5m") == timedelta(minutes=-5)
    for bad in ("", "5", "h", "5x", "1h 2m"):
        assert parse_go_duration(bad) is None


def test_windows_default_to_a_minute_accept_days_and_reject_garbage() -> None:
    assert parse_window("") == timedelta(minutes=1)
    assert parse_window("7d") == timedelta(days=7)
    assert parse_window("90s") == timedelta(seconds=90)
    for bad in ("abc", "0s", "-1m", "1w"):
        with pytest.raises(DurationError, match=f'invalid window "{bad}"'):
            parse_window(bad)


def test_expiry_is_strictly_after_the_instant_and_fails_closed() -> None:
    moment = "2026-02-28T12:30:45Z"
    assert not is_expired(moment, datetime(2026, 2, 28, 12, 30, 45, tzinfo=UTC))
    assert is_expired(moment, datetime(2026, 2, 28, 12, 30, 46, tzinfo=UTC))
    assert not is_expired(None, NOW) and not is_expired("", NOW)
    assert is_expired("not-a-date", NOW)


def _reference(moment: datetime, timespec: str) -> str:
    """What the formatters wrote before they kept each second's text."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec=timespec)


@pytest.mark.parametrize(
    "moment",
    [NOW, NOW.replace(microsecond=0), NOW.replace(microsecond=999_999),
     datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC), datetime(1, 1, 1, tzinfo=UTC),
     NOW.astimezone(timezone(timedelta(hours=5, minutes=30))),
     NOW.astimezone(timezone(timedelta(hours=-3))), NOW.replace(tzinfo=None)],
)  # fmt: skip
def test_timestamps_format_in_utc_whatever_the_zone_and_second(moment: datetime) -> None:
    for _ in range(2):  # the second's text is formatted once, then looked up
        assert format_rfc3339(moment) == _reference(moment, "seconds") + "Z"
        assert format_rfc3339_ms(moment) == _reference(moment, "milliseconds") + "Z"
        assert format_rfc3339_nano(moment) == _reference(moment, "microseconds") + "000Z"


def test_moments_of_one_second_keep_their_own_fraction_and_the_next_second_its_own() -> None:
    start = NOW.replace(microsecond=0)
    for micros in (0, 1, 999, 1000, 500_000, 999_999, 1_000_000, 1_000_001, 60_000_000):
        moment = start + timedelta(microseconds=micros)
        assert format_rfc3339_nano(moment) == _reference(moment, "microseconds") + "000Z"
        assert format_rfc3339_ms(moment) == _reference(moment, "milliseconds") + "Z"


def test_an_expiry_read_once_answers_the_same_and_the_memo_stays_bounded() -> None:
    moment = "2026-02-28T12:30:45Z"
    for _ in range(2):  # the second time from the memo
        assert not is_expired(moment, datetime(2026, 2, 28, 12, 30, 45, tzinfo=UTC))
        assert is_expired(moment, datetime(2026, 2, 28, 12, 30, 45, 1, tzinfo=UTC))
        assert is_expired("2026-02-30T00:00:00Z", NOW)  # unreadable: expired
    for day in range(durations.EXPIRIES_LIMIT + 10):
        assert not is_expired(f"2099-01-01T00:00:{day % 60:02d}.{day}Z", NOW)
    assert len(durations._EXPIRIES) <= durations.EXPIRIES_LIMIT
