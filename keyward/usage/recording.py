"""Applying reports to the database: usage increments, exhaustion, invalid keys.

Everything here runs inside the caller's write transaction and returns the Effects to run after it
commits. Usage of a batch is summed per project, model and minute before it is written, so a batch
of a thousand reports for one pool is a handful of upserts, taken in a fixed order (no deadlocks
between PostgreSQL writers).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import date, datetime

from sqlalchemy.orm import Session

from keyward.errors import NotFound
from keyward.keystrings import mask
from keyward.quota.signals import Signal, parse_error
from keyward.quota.windows import minute_floor, pacific_date
from keyward.storage import store as q
from keyward.storage import usage_queries as uq
from keyward.storage.models import FAILED, INVALID, RETIRED, Key
from keyward.usage.attribution import KnownKeys, Resolver, Target
from keyward.usage.effects import Effects
from keyward.usage.reports import ErrorReport, Report, UsageReport

log = logging.getLogger(__name__)

_GONE = (INVALID, RETIRED, FAILED)


class Recorder:
    """Collects the reports of one transaction, then writes them with `flush()`."""

    def __init__(self, s: Session, now: datetime, known: KnownKeys | None = None):
        self.s = s
        self.now = now
        self.resolve = Resolver(s, known)
        self.effects = Effects()
        self._usage: dict[tuple[int, str, datetime], list[int]] = defaultdict(lambda: [0, 0, 0])
        self._days: dict[tuple[int, str, datetime], date] = {}
        self.touched: set[int] = set()  # projects whose usage or exhaustion these reports change

    def add(self, report: Report) -> tuple[str, Signal | None]:
        """Attribute and stage one report; return (key id attributed, signal for errors)."""
        try:
            target = self.resolve(key_sha256=report.key_sha256, key_id=report.key_id,
                                  pool=report.pool, model=report.model)
        except NotFound as exc:
            if report.key and str(exc).startswith("the reported key"):  # a local report: mask it
                raise NotFound(f"the reported key {mask(report.key)} is not one keyward knows "
                               "(see `keyward key list`)") from None
            raise
        at = report.at or self.now
        self.touched.add(target.key.project_pk)
        if isinstance(report, UsageReport):
            minute = minute_floor(at)
            slot = (target.key.project_pk, target.model, minute)
            counts = self._usage[slot]
            counts[0] += report.requests
            counts[1] += report.input_tokens
            counts[2] += report.output_tokens
            self._days[slot] = pacific_date(at)
            return target.key.key_id, None
        return target.key.key_id, self._error(target, report, at)

    def flush(self) -> None:
        """Write the staged usage: one row update per project, model and minute, however many
        reports it sums, in a handful of statements for the whole transaction."""
        uq.add_local_many(self.s, [(pk, model, minute, self._days[(pk, model, minute)],
                                    tuple(self._usage[(pk, model, minute)]))
                                   for pk, model, minute in sorted(self._usage)])
        self._usage.clear()

    def _error(self, target: Target, report: ErrorReport, at: datetime) -> Signal:
        signal = parse_error(report.http_status, report.body, at, default_model=target.model)
        t = target.key
        if signal.kind == "quota":
            model = signal.model or target.model
            changed = uq.set_exhaustion(self.s, t.project_pk, model, until=signal.exhausted_until,
                                        scope=signal.scope or "minute",
                                        quota_ids=",".join(signal.quota_ids), now=self.now)
            if changed:
                q.journal(self.s, "quota.exhausted", signal.reason, level="warning",
                          project=t.project_id, pool=t.pool_name, key_id=t.key_id, now=self.now)
                self.effects.republish(t.pool_name, "exhausted")
            return signal
        if signal.kind == "no_key":  # the reporter's own mistake: no key is at fault
            q.journal(self.s, "report.no_key", signal.reason, level="warning",
                      project=t.project_id, pool=t.pool_name, key_id=t.key_id, now=self.now)
            return signal
        key = self.s.get(Key, t.key_pk)
        if signal.kind in ("invalid_key", "suspended") and key.state not in _GONE:
            # Quota never gets here: a 429 says nothing about the key itself.
            key.state, key.invalid_reason, key.invalid_at = INVALID, signal.reason, self.now
            q.journal(self.s, "key.invalid", f"key {key.key_id} ({key.masked}) taken out of use: "
                      f"{signal.reason}", level="error", project=t.project_id, pool=t.pool_name,
                      key_id=key.key_id, now=self.now)
            log.error("key %s of project %s taken out of use: %s", key.key_id, t.project_id,
                      signal.reason)
            self.effects.republish(t.pool_name, "invalid")
            if t.managed:
                self.effects.replace.append(key.key_id)
        return signal
