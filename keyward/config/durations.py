"""Durations as people write them in keyward's configuration and on its command line.

A duration is a whole number of seconds (`90`) or a string of number-unit pairs from largest to
smallest unit: `"90s"`, `"15m"`, `"24h"`, `"7d"`, `"1h30m"`, `"2w"`. Fractions are not accepted
(write `"90m"`, not `"1.5h"`): every duration keyward uses is a whole number of seconds, and one
spelling per value keeps configuration diffs honest.
"""

from __future__ import annotations

import datetime
import re

from keyward.errors import UsageError

_UNIT_SECONDS = {"w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}
_PAIR = re.compile(r"([0-9]+)\s*([wdhms])")  # ASCII digits only: "²".isdigit() is True
_WHOLE = re.compile(r"(?:[0-9]+\s*[wdhms]\s*)+")
# No duration keyward uses comes near a century; the bound keeps timedelta (and every date
# computed from it) far from overflowing.
MAX_SECONDS = 100 * 365 * 86400
_MAX_TEXT = 40

EXAMPLES = "'90s', '15m', '24h', '7d'"


class DurationError(UsageError, ValueError):
    """A duration was written in a form keyward does not read; the message quotes it."""


def parse_duration(text: str | int) -> datetime.timedelta:
    """Return the timedelta `text` names.

    An int (not a bool) is a number of seconds. A string is one or more `<digits><unit>` pairs,
    units w, d, h, m, s, each at most once and from largest to smallest. Raise `DurationError`
    naming the bad text otherwise, or for a negative number of seconds.
    """
    if isinstance(text, bool) or not isinstance(text, (int, str)):
        raise DurationError(f"expected a duration like {EXAMPLES}, got {type(text).__name__}")
    if isinstance(text, int):
        if text < 0:
            shown = text if text > -10**12 else "(a large negative number)"
            raise DurationError(f"bad duration {shown}: a duration cannot be negative")
        return _bounded(text, text)
    if len(text) > _MAX_TEXT:
        raise DurationError(f"bad duration: {len(text)} characters is longer than any duration")
    stripped = text.strip().lower()
    if stripped.isascii() and stripped.isdigit():
        return _bounded(int(stripped), text)
    if not _WHOLE.fullmatch(stripped):
        raise DurationError(
            f"bad duration {text!r}: expected numbers with units s, m, h, d or w, like {EXAMPLES} or '1h30m'"
        )
    total = 0
    seen: list[str] = []
    for number, unit in _PAIR.findall(stripped):
        if seen and (unit in seen or _UNIT_SECONDS[unit] > _UNIT_SECONDS[seen[-1]]):
            raise DurationError(
                f"bad duration {text!r}: write each unit once, largest first (like '1h30m')"
            )
        seen.append(unit)
        total += int(number) * _UNIT_SECONDS[unit]
    return _bounded(total, text)


def _bounded(seconds: int, text: str | int) -> datetime.timedelta:
    if seconds > MAX_SECONDS:
        shown = text if isinstance(text, str) else "this number of seconds"
        raise DurationError(f"bad duration {shown!r}: longer than 100 years")
    return datetime.timedelta(seconds=seconds)


def format_duration(value: datetime.timedelta) -> str:
    """Return the shortest string `parse_duration` reads back as `value` (whole seconds; "0s" for zero)."""
    seconds = int(value.total_seconds())
    if seconds == 0:
        return "0s"
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    parts = []
    for unit in ("d", "h", "m", "s"):
        count, seconds = divmod(seconds, _UNIT_SECONDS[unit])
        if count:
            parts.append(f"{count}{unit}")
    return sign + "".join(parts)
