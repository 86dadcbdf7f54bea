"""RFC 3339 timestamps as Google's APIs write them, and whole UTC minutes."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

_FRACTION = re.compile(r"\.(\d+)")


def to_rfc3339(moment: datetime) -> str:
    """Return `moment` in UTC as `YYYY-MM-DDTHH:MM:SSZ` (a naive datetime is taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(text: str) -> datetime:
    """Parse Google's timestamps (`Z` or an offset, 0-9 fractional digits) into aware UTC.

    Raise ValueError for anything else.
    """
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    value = _FRACTION.sub(lambda m: "." + (m.group(1) + "000000")[:6], value, count=1)
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError(f"timestamp without a time zone: {text!r}")
    return parsed.astimezone(timezone.utc)


def floor_minute(moment: datetime) -> datetime:
    """Return the start of the UTC minute holding `moment`."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).replace(second=0, microsecond=0)


MINUTE = timedelta(minutes=1)
