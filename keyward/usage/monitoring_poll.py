"""Polling Cloud Monitoring: per-minute Gemini usage of every project, merged with local reports.

Monitoring lags by minutes and its points are absolute per minute, so each poll re-reads the last
`usage.monitoring_lag` (from where the previous poll of that project stopped, or from the start of
the Pacific day the first time) and REPLACES the "monitoring" minute rows it reads. Local reports
are kept in their own rows; the effective count of a minute is the larger of the two, so traffic a
tool reported is never counted twice, and traffic no tool reported still shows up. A project's
failure (Google's 503s outlasting the retries, a malformed answer) is logged and the poll goes on
with the next project; that project's window is simply read again next time, so nothing is lost.

Projects are polled `usage.poll_workers` at a time: one at a time, a thousand projects at Google's
100 ms a call take minutes, longer than the poll interval. Each worker thread has its own client
(httplib2 is not thread-safe) and keeps its connection open for the whole pass, closing it at the
end, so a pass opens a handful of connections instead of one per call.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Callable

from keyward.errors import KeywardError
from keyward.quota.windows import MINUTE, minute_floor, pacific_date, pacific_day_start
from keyward.sources import UsageSource, build_source
from keyward.storage import store as q
from keyward.storage import usage_queries as uq

if TYPE_CHECKING:
    from keyward.context import Context

log = logging.getLogger(__name__)

META_PREFIX = "monitoring.through."


@dataclass
class ProjectPoll:
    """What one project's poll wrote: minutes replaced, requests seen, requests per key id."""

    minutes: int = 0
    requests: int = 0
    by_key: dict[str, int] = field(default_factory=dict)  # key id (or "uid:…" when unknown)


@dataclass
class PollSummary:
    """The outcome of one poll over every project; `failures` maps project id → reason."""

    projects: dict[str, ProjectPoll] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    skipped: bool = False


def _source(ctx: "Context", creds=None) -> UsageSource:
    from keyward.google.auth import load_credentials
    from keyward.google.monitoring import MonitoringClient

    if creds is None:
        creds = load_credentials(ctx.config.google.credentials,
                                 quota_project=ctx.config.google.quota_project)
    budget = min(ctx.config.rotation.retry_budget, ctx.config.usage.poll_interval)
    return build_source("cloud_monitoring",
                        client=MonitoringClient(creds, retry_budget=budget.total_seconds(), keep_alive=True))


class _PerThreadSources:
    """One source per worker thread from `make`, built on first use, closed together at the end."""

    def __init__(self, make: Callable[[], UsageSource]):
        self._make = make
        self._local = threading.local()
        self._lock = threading.Lock()
        self._all: list[UsageSource] = []

    def get(self) -> UsageSource:
        source = getattr(self._local, "source", None)
        if source is None:
            source = self._local.source = self._make()
            with self._lock:
                self._all.append(source)
        return source

    def close(self) -> None:
        for source in self._all:
            close = getattr(getattr(source, "client", None), "close", None)
            if callable(close):
                close()


def _default_factory(ctx: "Context") -> Callable[[], UsageSource]:
    from keyward.google.auth import load_credentials

    creds = load_credentials(ctx.config.google.credentials, quota_project=ctx.config.google.quota_project)
    return lambda: _source(ctx, creds)


def poll_monitoring(ctx: "Context", *, source: UsageSource | None = None,
                    source_factory: Callable[[], UsageSource] | None = None,
                    projects: list[str] | None = None, force: bool = False) -> PollSummary:
    """Read Monitoring for every project (or `projects`) and write its minutes; return a summary.

    Does nothing (summary.skipped) when `usage.monitoring` is off, unless `force`. Projects are
    polled `usage.poll_workers` at a time, each worker with its own source from `source_factory`
    (default: a Cloud Monitoring client). A given `source` is used for every project, one at a time.
    """
    if not (ctx.config.usage.monitoring or force):
        return PollSummary(skipped=True)
    now = ctx.now()
    with ctx.store.read() as s:
        todo = [row for row in uq.projects_with_pools(s) if projects is None or row[1] in projects]
    summary = PollSummary()
    if not todo:
        return summary
    sources = None if source is not None else _PerThreadSources(source_factory or _default_factory(ctx))

    def poll(row: tuple[int, str, str, str]) -> None:
        pk, project_id, _pool, model = row
        try:
            src = source if source is not None else sources.get()
            summary.projects[project_id] = _poll_project(ctx, src, pk, project_id, model, now)
        except KeywardError as exc:
            log.warning("polling Cloud Monitoring for project %s failed: %s", project_id, exc)
            summary.failures[project_id] = str(exc)

    workers = 1 if source is not None else min(ctx.config.usage.poll_workers, len(todo))
    try:
        if workers <= 1:
            for row in todo:
                poll(row)
        else:
            with ThreadPoolExecutor(workers, thread_name_prefix="keyward-monitoring") as pool:
                for outcome in [pool.submit(poll, row) for row in todo]:
                    outcome.result()  # poll() isolates KeywardError; anything else is a bug: raise it
    finally:
        if sources is not None:
            sources.close()
    return summary


def _window_start(ctx: "Context", project_id: str, now: datetime) -> datetime:
    usage = ctx.config.usage
    oldest = minute_floor(now - usage.minute_retention)
    with ctx.store.read() as s:
        meta = q.get_meta(s, META_PREFIX + project_id)
    if meta is None:
        start = pacific_day_start(now)
    else:
        start = datetime.fromisoformat(meta.value) - usage.monitoring_lag
    return max(minute_floor(min(start, now - usage.monitoring_lag)), oldest)


def _poll_project(ctx: "Context", source: UsageSource, pk: int, project_id: str, model: str,
                  now: datetime) -> ProjectPoll:
    start = _window_start(ctx, project_id, now)
    end = minute_floor(now) + MINUTE
    observations = source.read(project_id, start, end)
    cells: dict[tuple[str, datetime], list[int]] = defaultdict(lambda: [0, 0])
    per_uid: dict[str | None, int] = defaultdict(int)
    for obs in observations:
        minute = minute_floor(obs.minute)
        if not start <= minute < end:
            continue
        cell = cells[(obs.model or model, minute)]
        cell[0] += obs.requests
        cell[1] += obs.input_tokens
        if obs.requests:
            per_uid[obs.credential_uid] += obs.requests
    result = ProjectPoll()
    with ctx.store.write() as s:
        known = uq.keys_by_uid(s, [u for u in per_uid if u])
        for (cell_model, minute), (requests, tokens) in sorted(cells.items()):
            uq.set_monitoring(s, pk, cell_model, minute, pacific_date(minute),
                              (requests, tokens, 0))
            result.minutes += 1
            result.requests += requests
        for uid, n in per_uid.items():
            key = known.get(uid) if uid else None
            if key is not None and key.project_pk != pk:
                log.warning("Monitoring of project %s names key %s of another project",
                            project_id, key.key_id)
            name = key.key_id if key is not None else (f"uid:{uid}" if uid else "project")
            result.by_key[name] = result.by_key.get(name, 0) + n
        q.set_meta(s, META_PREFIX + project_id, end.isoformat(), now=now)
    book = getattr(ctx, "loads", None)
    if book is not None:
        book.touch([pk])
    log.debug("Monitoring of project %s: %d minute(s), %d request(s) since %s", project_id,
              result.minutes, result.requests, start.isoformat())
    return result
