"""Plain-text tables and times for people; JSON goes out untouched elsewhere."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Sequence


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(h) for h in headers]] + [["-" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    return "\n".join(lines)


def age(since: datetime | None, now: datetime) -> str:
    return "-" if since is None else span(now - since)


def until(when: datetime | None, now: datetime) -> str:
    if when is None:
        return "-"
    delta = when - now
    return f"in {span(delta)}" if delta >= timedelta(0) else f"{span(-delta)} ago"


def span(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"
    return f"{seconds // 86400}d{(seconds % 86400) // 3600}h"
