"""How loaded each project of a pool is right now: the figures selection and status work from.

Read-only and bulk: one pool is five queries whatever its size (minute rows of the last two minutes,
today's effective day rows, limits, live exhaustion), never one query per project, so `status`
stays fast with a thousand projects and two days of minute history.

The daemon does not recompute them for every choice: its `LoadBook` keeps each pool's loads and the
order of its projects by load, and recomputes only the projects something touched (a report, a 429,
a Monitoring poll), the projects with traffic when a minute ends (the RPM window moves on), and
everything at the Pacific day boundary and every `check_seconds`, which also catches what other
processes wrote (a report recorded without the daemon) and logs how far the kept loads had drifted.
The database stays the truth; a process without a book (the CLI) reads it directly.
"""

from __future__ import annotations

import bisect
import logging
import math
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy.orm import Session

from keyward.quota.windows import (
    Bucket, Limits, Usage, load, minute_floor, next_pacific_midnight, pacific_date, require_aware,
)
from keyward.storage import usage_queries as uq
from keyward.storage.models import Pool

WINDOW = timedelta(seconds=120)
CHECK_SECONDS = 60.0
MAX_TOUCHED = 100_000  # bounds what touches of projects in no kept pool can hold

log = logging.getLogger(__name__)


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
    project_pk: int = 0


def pool_loads(session: Session, pool_row: Pool, now: datetime,
               project_pks: Iterable[int] | None = None, *, summaries: bool = False) -> list[ProjectLoad]:
    """Return a ProjectLoad for every project of `pool_row` (or those of `project_pks`), by project id.

    RPM/TPM count the current and the previous minute (see quota.windows.usage_at), each minute
    being the larger of the local and the Monitoring count; RPD is today's (Pacific) effective
    day total. Exhaustion that has ended is ignored. With `summaries`, read the per-project summary
    rows kept on every write instead of the minute buckets (same figures, one row per project): the
    path of a process without the daemon's kept loads.
    """
    now = require_aware(now)
    model = pool_row.model
    rows = uq.pool_rows(session, pool_row.id, model, minute_floor(now - WINDOW),
                        pacific_date(now), now, project_pks, summaries=summaries)
    merged: dict[tuple[int, datetime], list[int]] = defaultdict(lambda: [0, 0])
    for pk, minute, _source, requests, tokens in rows.minutes:
        cell = merged[(pk, minute)]
        cell[0], cell[1] = max(cell[0], requests), max(cell[1], tokens)
    buckets: dict[int, list[Bucket]] = defaultdict(list)
    for (pk, minute), (requests, tokens) in merged.items():
        buckets[pk].append(Bucket(minute, requests, tokens))
    reset = next_pacific_midnight(now)
    # usage_at's RPM/TPM window, its bounds computed once per pool rather than once per project
    # (RPD comes from the day rows, so its Pacific-day bound is not needed here).
    window_start = minute_floor(now) - timedelta(minutes=1)
    out = []
    for pk, project_id in rows.projects:
        rpm = tpm = 0
        for b in buckets.get(pk, ()):
            if window_start <= b.minute <= now:
                rpm += b.requests
                tpm += b.input_tokens
        usage = Usage(rpm=rpm, tpm=tpm, rpd=rows.days.get(pk, 0))
        limit_row = rows.limits.get((pk, model)) or rows.limits.get((pk, uq.ALL_MODELS))
        if limit_row is None:
            limits, source = Limits(None, None, None), None
        else:
            limits, source = Limits(limit_row[0], limit_row[1], limit_row[2]), limit_row[3]
        until, scope = rows.exhaustion.get(pk, (None, None))
        out.append(ProjectLoad(project_id, model, usage, limits, source, load(usage, limits),
                               until, scope, reset, pk))
    return out


def order_key(pl: ProjectLoad) -> tuple[float, str]:
    """Least loaded first (no known limit counts as 0, as in selection), then by project id."""
    value = pl.load
    return (0.0 if value is None or math.isnan(value) else value, pl.project_id)


@dataclass
class KeptPool:
    """One pool's kept loads: by project id, and (order key, project id) sorted least loaded first.

    A ProjectLoad has the `load` and `exhausted_until` selection reads, so `loads` serves as its
    load facts as it is, without a copy per choice.
    """

    loads: dict[str, ProjectLoad]
    order: list[tuple[float, str]]
    model: str
    minute: datetime
    day: date
    checked_at: float
    pks: set[int] = field(default_factory=set)
    offers: object = None  # the pool's key offers, kept by the publisher; dropped on every check


class LoadBook:
    """The daemon's kept loads of every pool, updated incrementally (see the module docstring)."""

    def __init__(self, check_seconds: float = CHECK_SECONDS, clock: Callable[[], float] = time.monotonic):
        self.check_seconds = check_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._pools: dict[int, KeptPool] = {}
        self._touched: set[int] = set()
        self.rebuilds = 0  # full reads of a pool, for tests and the bench
        self.updates = 0  # partial ones

    def touch(self, project_pks: Iterable[int]) -> None:
        """Say these projects' usage or exhaustion changed: the next read recomputes them."""
        with self._lock:
            self._touched.update(project_pks)
            if len(self._touched) > MAX_TOUCHED:  # projects no pool reads (removed ones): start over
                self._touched.clear()
                self._pools.clear()

    def forget(self) -> None:
        """Drop everything kept: the next read of each pool reads it whole."""
        with self._lock:
            self._pools.clear()

    def forget_offers(self) -> None:
        """Drop the kept key offers (a key was promoted, retired or taken out): read them again."""
        with self._lock:
            for kept in self._pools.values():
                kept.offers = None

    def pool(self, session: Session, pool_row: Pool, now: datetime) -> KeptPool:
        """Return `pool_row`'s kept loads as of `now`, recomputing what is out of date first."""
        now = require_aware(now)
        minute, day = minute_floor(now), pacific_date(now)
        with self._lock:
            kept = self._pools.get(pool_row.id)
            if (kept is None or kept.day != day or kept.model != pool_row.model
                    or self._clock() - kept.checked_at >= self.check_seconds):
                self._pools[pool_row.id] = self._rebuild(session, pool_row, now, kept)
                return self._pools[pool_row.id]
            stale = {pk for pk in self._touched if pk in kept.pks}
            if kept.minute != minute:  # the RPM/TPM window moved: projects with traffic change
                stale.update(pl.project_pk for pl in kept.loads.values() if pl.usage.rpm or pl.usage.tpm)
                kept.minute = minute
            if stale:
                self._touched -= stale
                # The summary rows give the same figures in one query: this runs before each choice.
                self._update(kept, pool_loads(session, pool_row, now, stale, summaries=True))
            return kept

    def _rebuild(self, session: Session, pool_row: Pool, now: datetime, old: KeptPool | None) -> KeptPool:
        loads = pool_loads(session, pool_row, now)
        kept = KeptPool({pl.project_id: pl for pl in loads}, sorted(order_key(pl) for pl in loads),
                        pool_row.model, minute_floor(now), pacific_date(now), self._clock(),
                        pks={pl.project_pk for pl in loads})
        self._touched -= {pl.project_pk for pl in loads}
        self.rebuilds += 1
        if old is not None and old.day == kept.day and old.minute == kept.minute:
            drift = sum(1 for pid, pl in kept.loads.items()
                        if pid not in old.loads or old.loads[pid].usage != pl.usage
                        or old.loads[pid].exhausted_until != pl.exhausted_until)
            if drift:  # written by another process, or a change nothing touched
                log.debug("pool %s: the check against the database updated %d kept load(s)",
                          pool_row.name, drift)
        return kept

    def _update(self, kept: KeptPool, fresh: list[ProjectLoad]) -> None:
        for pl in fresh:
            old = kept.loads.get(pl.project_id)
            if old is not None:
                at = bisect.bisect_left(kept.order, order_key(old))
                if at < len(kept.order) and kept.order[at] == order_key(old):
                    del kept.order[at]
            kept.loads[pl.project_id] = pl
            bisect.insort(kept.order, order_key(pl))
        self.updates += 1
