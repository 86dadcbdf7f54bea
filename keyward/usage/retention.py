"""Forgetting old counts: minute rows after `usage.minute_retention`, day rows after
`usage.day_retention`, exhaustion once it has ended.

Day rows are maintained on every write, so deleting minutes never changes a day's total.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from keyward.quota.windows import minute_floor, pacific_date
from keyward.storage import usage_queries as uq

if TYPE_CHECKING:
    from keyward.context import Context

log = logging.getLogger(__name__)


def prune(ctx: "Context") -> dict[str, int]:
    """Delete expired usage rows; return {"minutes": n, "days": n, "exhaustion": n} deleted."""
    now = ctx.now()
    usage = ctx.config.usage
    with ctx.store.write() as s:
        counts = uq.prune(s, minutes_before=minute_floor(now - usage.minute_retention),
                          days_before=pacific_date(now - usage.day_retention), now=now)
    log.info("pruned %(minutes)d minute rows, %(days)d day rows, %(exhaustion)d ended exhaustions",
             counts)
    return counts
