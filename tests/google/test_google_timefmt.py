from datetime import datetime, timedelta, timezone

import pytest

from keyward.google.timefmt import floor_minute, parse_rfc3339, to_rfc3339


@pytest.mark.parametrize("text, expected", [
    ("2026-03-01T10:15:00Z", datetime(2026, 3, 1, 10, 15, tzinfo=timezone.utc)),
    ("2026-03-01T10:15:00.123456789Z", datetime(2026, 3, 1, 10, 15, 0, 123456, tzinfo=timezone.utc)),
    ("2026-03-01T10:15:00.5Z", datetime(2026, 3, 1, 10, 15, 0, 500000, tzinfo=timezone.utc)),
    ("2026-03-01T02:15:00-08:00", datetime(2026, 3, 1, 10, 15, tzinfo=timezone.utc)),
])
def test_parse_rfc3339_when_google_formats_returns_utc(text, expected):
    parsed = parse_rfc3339(text)
    assert parsed == expected and parsed.tzinfo == timezone.utc


@pytest.mark.parametrize("text", ["2026-03-01T10:15:00", "yesterday", ""])
def test_parse_rfc3339_when_garbage_or_naive_raises(text):
    with pytest.raises(ValueError):
        parse_rfc3339(text)


def test_to_rfc3339_converts_to_utc_and_takes_naive_as_utc():
    aware = datetime(2026, 3, 1, 2, 15, 30, tzinfo=timezone(timedelta(hours=-8)))
    assert to_rfc3339(aware) == "2026-03-01T10:15:30Z"
    assert to_rfc3339(datetime(2026, 3, 1, 10, 15, 30)) == "2026-03-01T10:15:30Z"


def test_floor_minute_drops_seconds():
    assert floor_minute(datetime(2026, 3, 1, 10, 15, 59, 999, tzinfo=timezone.utc)) == \
        datetime(2026, 3, 1, 10, 15, tzinfo=timezone.utc)
