"""Column types that behave the same on SQLite and PostgreSQL.

SQLite has no time zones: it hands back naive datetimes. keyward reasons in UTC everywhere (the Pacific
day is derived, never stored), so every timestamp is stored as naive UTC and comes back aware.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import DateTime
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator):
    """An aware UTC datetime; naive values are refused so local time never sneaks in."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("keyward stores aware datetimes only (got a naive one)")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc)
