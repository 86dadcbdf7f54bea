"""The emulator's notion of time, and the time formats Google's APIs use.

Tests move time with `advance` instead of sleeping; the offset applies on top of whatever clock the
emulator was built with. Gemini's per-day quotas reset at midnight in America/Los_Angeles, so the
day boundary is computed in that zone (it moves with daylight saving time).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

PACIFIC = ZoneInfo("America/Los_Angeles")


class Clock:
    """Epoch seconds from a base clock plus an offset that `advance` grows."""

    def __init__(self, base: Callable[[], float] | None = None):
        self._base = base or time.time
        self.offset = 0.0

    def now(self) -> float:
        """Return the emulator's current time in epoch seconds."""
        return self._base() + self.offset

    def advance(self, seconds: float) -> None:
        """Move the emulator's time forward by `seconds` (negative values are refused)."""
        if seconds < 0:
            raise ValueError("the emulator's clock only moves forward")
        self.offset += seconds


def rfc3339(epoch: float) -> str:
    """Format epoch seconds as Google does: UTC, microseconds, trailing `Z`."""
    dt = datetime.fromtimestamp(epoch, tz=timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_rfc3339(text: str) -> float:
    """Parse an RFC 3339 timestamp (any offset, optional fraction) into epoch seconds.

    Raise ValueError if `text` is not a timestamp.
    """
    s = text.strip()
    if s.endswith(("Z", "z")):
        s = s[:-1] + "+00:00"
    # fromisoformat accepts at most microseconds; Google may send nanoseconds.
    if "." in s:
        head, _, rest = s.partition(".")
        digits = "".join(c for c in rest if c.isdigit())
        zone = rest[len(digits):]
        s = f"{head}.{digits[:6].ljust(6, '0')}{zone}"
    dt = datetime.fromisoformat(s)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def pacific_day_start(epoch: float) -> float:
    """Return the epoch of the most recent midnight in America/Los_Angeles at or before `epoch`."""
    local = datetime.fromtimestamp(epoch, tz=PACIFIC)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight.timestamp()


def next_pacific_midnight(epoch: float) -> float:
    """Return the epoch of the next midnight in America/Los_Angeles after `epoch`."""
    local = datetime.fromtimestamp(epoch, tz=PACIFIC)
    tomorrow = (local + timedelta(days=1)).date()
    return datetime(tomorrow.year, tomorrow.month, tomorrow.day, tzinfo=PACIFIC).timestamp()
