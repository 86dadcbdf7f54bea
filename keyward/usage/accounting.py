"""The usage accounting service: record reports and refused calls, read loads, poll, refresh, prune.

Each recording call is one transaction; what it implies for publishing (another key out at once
after an exhausting 429 or an invalid key) runs after the commit, so a report is never lost to a
publishing failure. Polling Monitoring, refreshing limits and pruning live in their own modules and
are re-exported here, so callers need one import.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Iterable

from keyward.errors import KeywardError
from keyward.quota.signals import Signal
from keyward.usage import effects as fx
from keyward.usage.attribution import KnownKeys
from keyward.usage.loads import ProjectLoad, pool_loads
from keyward.usage.monitoring_poll import PollSummary, poll_monitoring
from keyward.usage.limits import refresh_limits
from keyward.usage.recording import Recorder
from keyward.usage.reports import ErrorReport, Report, UsageReport
from keyward.usage.retention import prune

if TYPE_CHECKING:
    from keyward.context import Context

__all__ = [
    "BatchResult", "PollSummary", "ProjectLoad", "pool_loads", "poll_monitoring", "prune",
    "record_batch", "record_error", "record_usage", "refresh_limits",
]

log = logging.getLogger(__name__)


def record_usage(ctx: "Context", *, key: str | None = None, key_id: str | None = None,
                 pool: str | None = None, model: str | None = None, requests: int = 1,
                 input_tokens: int = 0, output_tokens: int = 0, at: datetime | None = None,
                 source: str = "local") -> str:
    """Count usage against the project of the key used; return the key id it was attributed to.

    Raise NotFound for an unknown key, key id or pool; NothingPublished when only a pool is named
    and it has no current key; UsageError for a source other than "local" (Monitoring writes
    absolute minutes through the poller).
    """
    if source != "local":
        from keyward.errors import UsageError

        raise UsageError(f"usage source {source!r} cannot be reported; only 'local' is")
    report = UsageReport(pool, key, key_id, model, requests, input_tokens, output_tokens, at)
    result = record_batch(ctx, [report])
    return result.key_ids[0]


def record_error(ctx: "Context", http_status: int, body: Any, *, key: str | None = None,
                 key_id: str | None = None, pool: str | None = None, model: str | None = None,
                 at: datetime | None = None) -> Signal:
    """Record a refused Gemini call as Google sent it; return what it means (a Signal).

    Quota → an Exhaustion row (per-day until the next Pacific midnight, per-minute until the
    retry delay passes) and the pool republished. Invalid key or suspension → the key is taken
    out (state invalid, journaled at level error), the pool republished, and for a managed project
    the key replaced. Transient and other errors change nothing.
    """
    result = record_batch(ctx, [ErrorReport(http_status, body, pool, key, key_id, model, at)])
    return result.signals[0]


@dataclass(frozen=True)
class BatchResult:
    """Per report: the key id attributed and, for error reports, the Signal (None for usage)."""

    key_ids: list[str]
    signals: list[Signal | None]


def record_batch(ctx: "Context", reports: Iterable[Report], *, run_effects: bool = True,
                 pending: fx.Effects | None = None, known: KnownKeys | None = None) -> BatchResult:
    """Record many reports in ONE transaction (all or none), then run their effects.

    With `run_effects=False` the effects are merged into `pending` for the caller to run. With
    `known`, keys looked up recently are not looked up again. A KeywardError about one report
    carries its position as `report_index`.
    """
    now = ctx.now()
    key_ids: list[str] = []
    signals: list[Signal | None] = []
    with ctx.store.write() as s:
        recorder = Recorder(s, now, known)
        for index, report in enumerate(reports):
            try:
                key_id, signal = recorder.add(report)
            except KeywardError as exc:
                exc.report_index = index  # lets the ingest socket name the bad line
                raise
            key_ids.append(key_id)
            signals.append(signal)
        recorder.flush()
    book = getattr(ctx, "loads", None)
    if book is not None:  # before the effects run: a republish must see these reports
        book.touch(recorder.touched)
    if pending is not None:
        pending.merge(recorder.effects)
    if run_effects and recorder.effects:
        fx.run(ctx, recorder.effects)
    return BatchResult(key_ids, signals)
