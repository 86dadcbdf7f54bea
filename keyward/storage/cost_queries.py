"""The one query behind cost estimates: tokens per project and model for the Pacific day and month.

It reads the "effective" day rows (the per-minute maxima of local reports and Monitoring, the same
figures RPD uses), summed in the database, so status pays one grouped query, not a row per day.
Core only: it runs in an ORM session (publishing's budget check) or on a plain connection (status).
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

from sqlalchemy import case, func, select

from keyward.storage.tables import EFFECTIVE, pools, projects
from keyward.storage.tables import usage_days as days

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection
    from sqlalchemy.orm import Session


def token_totals(s: "Session | Connection", *, today: date, month_start: date,
                 pool: str | None = None) -> list[tuple[str, str, str, int, int, int, int]]:
    """Return (project_id, pool, model, day_input, day_output, month_input, month_output) rows for
    the Pacific day `today` and the days from `month_start` on (one pool, or all)."""
    is_today = days.c.day == today
    stmt = (
        select(projects.c.project_id, pools.c.name, days.c.model,
               func.sum(case((is_today, days.c.input_tokens), else_=0)),
               func.sum(case((is_today, days.c.output_tokens), else_=0)),
               func.sum(days.c.input_tokens), func.sum(days.c.output_tokens))
        .join(projects, projects.c.id == days.c.project_pk)
        .join(pools, pools.c.id == projects.c.pool_id)
        .where(days.c.source == EFFECTIVE, days.c.day >= month_start, days.c.day <= today)
        .group_by(projects.c.project_id, pools.c.name, days.c.model)
    )
    if pool is not None:
        stmt = stmt.where(pools.c.name == pool)
    return [(r[0], r[1], r[2], int(r[3] or 0), int(r[4] or 0), int(r[5] or 0), int(r[6] or 0))
            for r in s.execute(stmt)]
