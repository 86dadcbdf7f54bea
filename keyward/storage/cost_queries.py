"""The one query behind cost estimates: tokens per project and model for the Pacific day and month.

It reads the "effective" day rows (the per-minute maxima of local reports and Monitoring, the same
figures RPD uses), summed in the database, so status pays one grouped query, not a row per day.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from keyward.storage.models import Pool, Project, UsageDay
from keyward.storage.usage_queries import EFFECTIVE


def token_totals(s: Session, *, today: date, month_start: date,
                 pool: str | None = None) -> list[tuple[str, str, str, int, int, int, int]]:
    """Return (project_id, pool, model, day_input, day_output, month_input, month_output) rows for
    the Pacific day `today` and the days from `month_start` on (one pool, or all)."""
    is_today = UsageDay.day == today
    stmt = (
        select(Project.project_id, Pool.name, UsageDay.model,
               func.sum(case((is_today, UsageDay.input_tokens), else_=0)),
               func.sum(case((is_today, UsageDay.output_tokens), else_=0)),
               func.sum(UsageDay.input_tokens), func.sum(UsageDay.output_tokens))
        .join(Project, Project.id == UsageDay.project_pk)
        .join(Pool, Pool.id == Project.pool_id)
        .where(UsageDay.source == EFFECTIVE, UsageDay.day >= month_start, UsageDay.day <= today)
        .group_by(Project.project_id, Pool.name, UsageDay.model)
    )
    if pool is not None:
        stmt = stmt.where(Pool.name == pool)
    return [(r[0], r[1], r[2], int(r[3] or 0), int(r[4] or 0), int(r[5] or 0), int(r[6] or 0))
            for r in s.execute(stmt)]
