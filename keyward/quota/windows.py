"""Quota windows: per-minute counts, the Pacific day, and how loaded a project is.

Gemini quota is counted per Google Cloud project and per model: requests per minute (RPM),
input tokens per minute (TPM) and requests per day (RPD). The day does not follow UTC: it
resets at midnight in America/Los_Angeles, so it lasts 23 hours on the spring-forward day
and 25 hours on the fall-back day. All instants returned here are aware UTC datetimes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

PACIFIC = ZoneInfo("America/Los_Angeles")
MINUTE = timedelta(minutes=1)


def require_aware(ts: datetime, name: str = "now") -> datetime:
    """Return `ts` unchanged; raise ValueError if it is naive (a naive time has no instant)."""
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got a naive one")
    return ts


def utc_clock(ts: datetime, now: datetime) -> str:
    """Return `ts` as a short UTC clock for people ("07:00 UTC"), with the date if not today."""
    u = require_aware(ts, "ts").astimezone(timezone.utc)
    fmt = "%H:%M" if u.second == 0 and u.microsecond == 0 else "%H:%M:%S"
    if u.date() != require_aware(now).astimezone(timezone.utc).date():
        fmt = "%Y-%m-%d " + fmt
    return u.strftime(fmt) + " UTC"


def minute_floor(ts: datetime) -> datetime:
    """Return the UTC start of the minute holding `ts` (seconds and microseconds dropped)."""
    utc = require_aware(ts, "ts").astimezone(timezone.utc)
    return utc.replace(second=0, microsecond=0)


def pacific_date(now: datetime) -> date:
    """Return the calendar date in Pacific time at `now`: the day Google's RPD counter is on."""
    return require_aware(now).astimezone(PACIFIC).date()


def _pacific_midnight_utc(day: date) -> datetime:
    # Pacific DST switches happen at 02:00 local, so 00:00 always exists exactly once and
    # attaching the zone to a wall-clock midnight is never ambiguous.
    return datetime.combine(day, time(0), tzinfo=PACIFIC).astimezone(timezone.utc)


def pacific_day_start(now: datetime) -> datetime:
    """Return the UTC instant of the last Pacific midnight at or before `now`."""
    return _pacific_midnight_utc(pacific_date(now))


def next_pacific_midnight(now: datetime) -> datetime:
    """Return the UTC instant of the first Pacific midnight strictly after `now`.

    The next day is found on the calendar, not by adding 24 hours, so the answer is right on
    the 23-hour and 25-hour days.
    """
    return _pacific_midnight_utc(pacific_date(now) + timedelta(days=1))


@dataclass(frozen=True)
class Limits:
    """A project's limits for one model; None means unknown or unlimited (Google's -1 too)."""

    rpm: int | None
    tpm: int | None
    rpd: int | None


@dataclass(frozen=True)
class Usage:
    """Requests and input tokens counted against the three limits at one instant."""

    rpm: int
    tpm: int
    rpd: int


@dataclass(frozen=True)
class Bucket:
    """Requests and input tokens recorded during the minute starting at `minute` (aware)."""

    minute: datetime
    requests: int
    input_tokens: int


def usage_at(buckets: Iterable[Bucket], now: datetime) -> Usage:
    """Return the usage that counts against the limits at `now`.

    RPM and TPM: Google's window is the last 60 seconds, but a minute bucket does not say
    when inside its minute a request came. The window (now-60s, now] always overlaps the
    current minute and the previous one, so both buckets are counted in full. This can
    over-count (up to two minutes' worth) but never under-counts, which is the safe side for
    picking a key that will not be refused.

    RPD: every request in buckets from the last Pacific midnight up to `now`. Pacific
    midnight falls on a whole UTC minute, so no bucket straddles the day boundary.

    Buckets after `now` are ignored; buckets may repeat a minute and are then added up.
    """
    now = require_aware(now)
    current = minute_floor(now)
    minute_start = current - MINUTE
    day_start = pacific_day_start(now)
    rpm = tpm = rpd = 0
    for b in buckets:
        m = minute_floor(b.minute)
        if m > now:
            continue
        if m >= minute_start:
            rpm += b.requests
            tpm += b.input_tokens
        if m >= day_start:
            rpd += b.requests
    return Usage(rpm=rpm, tpm=tpm, rpd=rpd)


def _pairs(usage: Usage, limits: Limits) -> list[tuple[str, int, int]]:
    """(name, used, limit) for each limit that is set; a negative limit means unlimited."""
    out = []
    for name in ("rpm", "tpm", "rpd"):
        limit = getattr(limits, name)
        if limit is not None and limit >= 0:
            out.append((name, getattr(usage, name), limit))
    return out


def load(usage: Usage, limits: Limits) -> float | None:
    """Return the highest used/limit fraction over the known limits, None if none is known.

    1.0 means a limit is reached. A limit of 0 (the model is not offered to the project)
    gives infinity, so such a project always sorts last.
    """
    worst: float | None = None
    for _name, used, limit in _pairs(usage, limits):
        frac = math.inf if limit == 0 else used / limit
        if worst is None or frac > worst:
            worst = frac
    return worst


def binding_limit(usage: Usage, limits: Limits) -> str | None:
    """Return which limit ("rpm", "tpm" or "rpd") is closest to being hit, None if none known."""
    best: tuple[float, str] | None = None
    for name, used, limit in _pairs(usage, limits):
        frac = math.inf if limit == 0 else used / limit
        if best is None or frac > best[0]:
            best = (frac, name)
    return None if best is None else best[1]


def headroom(usage: Usage, limits: Limits) -> Limits:
    """Return what is left under each limit (never below 0); None where the limit is unknown."""
    left = {name: max(limit - used, 0) for name, used, limit in _pairs(usage, limits)}
    return Limits(rpm=left.get("rpm"), tpm=left.get("tpm"), rpd=left.get("rpd"))
