"""How loaded each project of a pool is right now: the figures selection and status work from.

Read-only and bulk: one pool is five queries whatever its size (minute rows of the last two minutes,
today's effective day rows, limits, live exhaustion), never one query per project, so `status`
stays fast with a thousand projects and two days of minute history.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from keyward.quota.windows import (
    Bucket, Limits, Usage, load, minute_floor, next_pacific_midnight, pacific_date, require_aware,
    usage_at,
)
from keyward.storage import usage_queries as uq
from keyward.storage.models import Pool

WINDOW = timedelta(seconds=120)


@dataclass(frozen=True)
class ProjectLoad:
    """One project's use of its pool's model: usage, limits (and where they came from), load."""

    project_id: str
    model: str
    usage: Usage
    limits: Limits
    limit_source: str | None
    load: float | None
    exhausted_until: datetime | None
    exhausted_scope: str | None
    rpd_reset_at: datetime


def pool_loads(session: Session, pool_row: Pool, now: datetime) -> list[ProjectLoad]:
    """Return a ProjectLoad for every project of `pool_row`, ordered by project id.

    RPM/TPM count the current and the previous minute (see quota.windows.usage_at), each minute
    being the larger of the local and the Monitoring count; RPD is today's (Pacific) effective
    day total. Exhaustion that has ended is ignored.
    """
    now = require_aware(now)
    model = pool_row.model
    rows = uq.pool_rows(session, pool_row.id, model, minute_floor(now - WINDOW),
                        pacific_date(now), now)
    merged: dict[tuple[int, datetime], list[int]] = defaultdict(lambda: [0, 0])
    for pk, minute, _source, requests, tokens in rows.minutes:
        cell = merged[(pk, minute)]
        cell[0], cell[1] = max(cell[0], requests), max(cell[1], tokens)
    buckets: dict[int, list[Bucket]] = defaultdict(list)
    for (pk, minute), (requests, tokens) in merged.items():
        buckets[pk].append(Bucket(minute, requests, tokens))
    reset = next_pacific_midnight(now)
    out = []
    for pk, project_id in rows.projects:
        minute_usage = usage_at(buckets.get(pk, ()), now)
        usage = Usage(rpm=minute_usage.rpm, tpm=minute_usage.tpm, rpd=rows.days.get(pk, 0))
        limit_row = rows.limits.get((pk, model)) or rows.limits.get((pk, uq.ALL_MODELS))
        if limit_row is None:
            limits, source = Limits(None, None, None), None
        else:
            limits, source = Limits(limit_row[0], limit_row[1], limit_row[2]), limit_row[3]
        until, scope = rows.exhaustion.get(pk, (None, None))
        out.append(ProjectLoad(project_id, model, usage, limits, source, load(usage, limits),
                               until, scope, reset))
    return out
