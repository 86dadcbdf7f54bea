from datetime import timedelta

import pytest

from keyward.config import DurationError, format_duration, parse_duration
from keyward.errors import UsageError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("15m", timedelta(minutes=15)),
        ("24h", timedelta(hours=24)),
        ("7d", timedelta(days=7)),
        ("2w", timedelta(weeks=2)),
        ("1h30m", timedelta(minutes=90)),
        ("1d 2h 3m 4s", timedelta(days=1, hours=2, minutes=3, seconds=4)),
        ("  45S ", timedelta(seconds=45)),
        ("120", timedelta(seconds=120)),
        (90, timedelta(seconds=90)),
        (0, timedelta(0)),
    ],
)
def test_parse_duration_when_valid_returns_timedelta(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "7x", "1.5h", "h", "-5m", "30m1h", "1h1h", "5 minutes", "1h30"])
def test_parse_duration_when_malformed_raises_naming_the_text(text):
    with pytest.raises(DurationError) as caught:
        parse_duration(text)
    assert repr(text) in str(caught.value)


@pytest.mark.parametrize("value", [True, 1.5, None, [1]])
def test_parse_duration_when_wrong_type_raises_with_examples(value):
    with pytest.raises(DurationError, match="expected a duration like '90s'"):
        parse_duration(value)


def test_parse_duration_when_negative_int_raises():
    with pytest.raises(DurationError, match="-3"):
        parse_duration(-3)


def test_duration_error_is_a_usage_error_and_a_value_error():
    with pytest.raises(UsageError):
        parse_duration("soon")
    with pytest.raises(ValueError):
        parse_duration("soon")


@pytest.mark.parametrize("text", ["45s", "15m", "1d", "1h30m", "15d", "1d1h1m1s", "0s"])
def test_format_duration_when_parsed_back_gives_same_text(text):
    assert format_duration(parse_duration(text)) == text


def test_format_duration_when_seconds_exceed_a_minute_carries_into_minutes():
    assert format_duration(timedelta(seconds=90)) == "1m30s"
