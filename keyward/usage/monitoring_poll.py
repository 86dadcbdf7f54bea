"""Polling Cloud Monitoring: per-minute Gemini usage of every project, merged with local reports.

Monitoring lags by minutes and its points are absolute per minute, so each poll re-reads the last
`usage.monitoring_lag` (from where the previous poll of that project stopped, or from the start of
the Pacific day the first time) and REPLACES the "monitoring" minute rows it reads. Local reports
are kept in their own rows; the effective count of a minute is the larger of the two, so traffic a
tool reported is never counted twice, and traffic no tool reported still shows up. A project's
failure (Google's 503s outlasting the retries, a malformed answer) is logged and the poll goes on
with the next project; that project's window is simply read again next time, so nothing is lost.

Google charges every Monitoring read to the quota project, whichever project it reads, and a list
filter names one metric type, so a project read on its own costs two reads of one shared
per-minute budget. Two ways keep a large poll fast and under that budget:

- **Metrics scopes** (`usage.metrics_scopes`): the projects a listed scope monitors are read
  together, two reads (plus pages) per scope, then split by `resource.labels.project_id`
  (monitoring_scopes.py decides who is read where). A scope that cannot be read fails its
  members for this pass (read again next pass); a scope whose membership cannot be read leaves
  its projects to be polled on their own.
- **Per project**, for every project no listed scope claims: `usage.poll_workers` at a time,
  each worker thread with its own client (httplib2 is not thread-safe) keeping its connection
  for the pass. Every read, pages and retries included, first takes a slot of a process-wide
  pace of `usage.monitoring_reads_per_minute`, so more workers never mean more than the quota.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable

from keyward.errors import KeywardError
from keyward.quota.windows import MINUTE, minute_floor, pacific_date, pacific_day_start
from keyward.sources import UsageSource
from keyward.sources.base import Observation
from keyward.storage import store as q
from keyward.storage import usage_queries as uq
from keyward.usage import monitoring_clients as clients
from keyward.usage.monitoring_scopes import Target, assign, slices, union_window

if TYPE_CHECKING:
    from keyward.context import Context

log = logging.getLogger(__name__)

META_PREFIX = "monitoring.through."
# Scope answers (a slice of up to 375 projects each) held in memory at once by one poll.
SCOPES_AT_ONCE = 4


@dataclass
class ProjectPoll:
    """What one project's poll wrote: minutes replaced, requests seen, requests per key id."""

    minutes: int = 0
    requests: int = 0
    by_key: dict[str, int] = field(default_factory=dict)  # key id (or "uid:…" when unknown)
    scope: str | None = None  # the scoping project it was read through, None when read alone


@dataclass
class PollSummary:
    """The outcome of one poll over every project; `failures` maps project id → reason.

    `alone` lists the projects read on their own although metrics scopes are configured (in no
    listed scope, or their number unknown): each costs two reads a poll.
    """

    projects: dict[str, ProjectPoll] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    skipped: bool = False
    alone: list[str] = field(default_factory=list)


def _read_scopes(ctx: "Context", scopes_client: Any) -> list:
    """Read the membership of every listed scope; a scope that cannot be read is logged and left
    out, so its projects are polled on their own rather than lost."""
    if scopes_client is None:
        scopes_client = clients.scopes_client(ctx)
    found = []
    for scope in ctx.config.usage.metrics_scopes:
        try:
            found.append(scopes_client.get(scope))
        except KeywardError as exc:
            log.warning("reading the metrics scope of %s failed, its projects are polled one by "
                        "one this time: %s", scope, exc)
    return found


def poll_monitoring(ctx: "Context", *, source: UsageSource | None = None,
                    source_factory: Callable[[], UsageSource] | None = None,
                    projects: list[str] | None = None, force: bool = False,
                    scopes_client: Any = None) -> PollSummary:
    """Read Monitoring for every project (or `projects`) and write its minutes; return a summary.

    Does nothing (summary.skipped) when `usage.monitoring` is off, unless `force`. Projects in a
    listed metrics scope (`usage.metrics_scopes`, membership from `scopes_client`, default a
    Metrics Scopes client) are read per scope; the rest `usage.poll_workers` at a time, each
    worker with its own source from `source_factory` (default: a Cloud Monitoring client). A given
    `source` is used for everything, one read at a time.
    """
    if not (ctx.config.usage.monitoring or force):
        return PollSummary(skipped=True)
    now = ctx.now()
    with ctx.store.read() as s:
        rows = [row for row in uq.projects_with_pools(s) if projects is None or row[1] in projects]
        numbers = uq.project_numbers(s) if ctx.config.usage.metrics_scopes else {}
    summary = PollSummary()
    if not rows:
        return summary
    targets = [Target(pk, pid, numbers.get(pid), model) for pk, pid, _pool, model in rows]
    by_scope: dict[str, list[Target]] = {}
    alone = targets
    if ctx.config.usage.metrics_scopes:
        by_scope, alone = assign(targets, _read_scopes(ctx, scopes_client))
        summary.alone = [t.project_id for t in alone]
        if alone:
            log.info("%d project(s) are in no listed metrics scope (or have no project number in "
                     "the config) and are polled one by one", len(alone))
    sources = None if source is not None else clients.PerThreadSources(
        source_factory or clients.default_factory(ctx))
    lock = threading.Lock()

    def current() -> UsageSource:
        return source if source is not None else sources.get()

    slots = threading.BoundedSemaphore(SCOPES_AT_ONCE)
    tasks: list[Callable[[], None]] = [
        lambda s=s, m=m: _poll_scope(ctx, current(), s, m, now, summary, lock, slots)
        for s, m in by_scope.items()]
    tasks += [lambda t=t: _poll_alone(ctx, current(), t, now, summary, lock) for t in alone]
    workers = 1 if source is not None else min(ctx.config.usage.poll_workers, len(tasks))
    try:
        if workers <= 1:
            for task in tasks:
                task()
        else:
            with ThreadPoolExecutor(workers, thread_name_prefix="keyward-monitoring") as pool:
                for outcome in [pool.submit(task) for task in tasks]:
                    outcome.result()  # tasks isolate KeywardError; anything else is a bug: raise it
    finally:
        if sources is not None:
            sources.close()
    return summary


def _poll_scope(ctx: "Context", source: UsageSource, scope: str, members: list[Target],
                now: datetime, summary: PollSummary, lock: threading.Lock,
                slots: threading.Semaphore) -> None:
    """Read one metrics scope over its members' union window, slice by slice, and write each
    member's own window; record a member as read (its window done) only after the last slice.
    If the scope cannot be read, fail its members not yet done (read again next poll). A source
    that cannot read scopes reads the members one by one. `slots` bounds how many scope answers
    the whole poll holds in memory at once."""
    read_scope = getattr(source, "read_scope", None)
    if read_scope is None:  # a source that reads one project at a time: read them so
        for target in members:
            _poll_alone(ctx, source, target, now, summary, lock)
        return
    starts = _window_starts(ctx, [t.project_id for t in members], now)
    start, end = union_window(starts, minute_floor(now) + MINUTE)
    pieces = slices(start, end)
    results = {t.project_id: ProjectPoll(scope=scope) for t in members}
    failed: dict[str, str] = {}
    for index, (a, b) in enumerate(pieces):
        last = index == len(pieces) - 1
        with slots:
            try:
                found: dict[str, list[Observation]] = read_scope(scope, a, b)
            except KeywardError as exc:
                log.warning("reading the metrics scope of %s from Cloud Monitoring failed; its %d "
                            "project(s) are read again next poll: %s", scope, len(members), exc)
                for target in members:
                    failed.setdefault(target.project_id, f"metrics scope {scope}: {exc}")
                break
            for target in members:
                own = starts[target.project_id]
                if target.project_id in failed or (own >= b and not last):
                    continue
                try:
                    part = _write_project(ctx, target.pk, target.project_id, target.model,
                                          max(a, own), b, found.get(target.project_id, []), now,
                                          through=end if last else None)
                except KeywardError as exc:
                    log.warning("writing Cloud Monitoring usage of project %s failed: %s",
                                target.project_id, exc)
                    failed[target.project_id] = str(exc)
                    continue
                _merge(results[target.project_id], part)
    with lock:
        summary.failures.update(failed)
        for project_id, result in results.items():
            if project_id not in failed:
                summary.projects[project_id] = result


def _merge(total: ProjectPoll, part: ProjectPoll) -> None:
    total.minutes += part.minutes
    total.requests += part.requests
    for name, n in part.by_key.items():
        total.by_key[name] = total.by_key.get(name, 0) + n


def _poll_alone(ctx: "Context", source: UsageSource, target: Target, now: datetime,
                summary: PollSummary, lock: threading.Lock) -> None:
    try:
        result = _poll_project(ctx, source, target.pk, target.project_id, target.model, now)
        with lock:
            summary.projects[target.project_id] = result
    except KeywardError as exc:
        log.warning("polling Cloud Monitoring for project %s failed: %s", target.project_id, exc)
        with lock:
            summary.failures[target.project_id] = str(exc)


def _window_starts(ctx: "Context", project_ids: list[str], now: datetime) -> dict[str, datetime]:
    with ctx.store.read() as s:
        metas = {pid: q.get_meta(s, META_PREFIX + pid) for pid in project_ids}
    return {pid: _start_from(ctx, meta.value if meta is not None else None, now)
            for pid, meta in metas.items()}


def _window_start(ctx: "Context", project_id: str, now: datetime) -> datetime:
    with ctx.store.read() as s:
        meta = q.get_meta(s, META_PREFIX + project_id)
    return _start_from(ctx, meta.value if meta is not None else None, now)


def _start_from(ctx: "Context", through: str | None, now: datetime) -> datetime:
    """Where a project's window starts: `monitoring_lag` before where its last poll stopped, or
    the start of the Pacific day the first time, never before the minutes kept."""
    usage = ctx.config.usage
    oldest = minute_floor(now - usage.minute_retention)
    if through is None:
        start = pacific_day_start(now)
    else:
        start = datetime.fromisoformat(through) - usage.monitoring_lag
    return max(minute_floor(min(start, now - usage.monitoring_lag)), oldest)


def _poll_project(ctx: "Context", source: UsageSource, pk: int, project_id: str, model: str,
                  now: datetime) -> ProjectPoll:
    start = _window_start(ctx, project_id, now)
    end = minute_floor(now) + MINUTE
    return _write_project(ctx, pk, project_id, model, start, end, source.read(project_id, start, end),
                          now, through=end)


def _write_project(ctx: "Context", pk: int, project_id: str, model: str, start: datetime,
                   end: datetime, observations: list[Observation], now: datetime, *,
                   through: datetime | None) -> ProjectPoll:
    """Replace the project's Monitoring minutes in [start, end) with `observations` (anything
    outside the window is ignored); with `through`, record that the project was read up to it."""
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
        if through is not None:
            q.set_meta(s, META_PREFIX + project_id, through.isoformat(), now=now)
    book = getattr(ctx, "loads", None)
    if book is not None:
        book.touch([pk])
    log.debug("Monitoring of project %s: %d minute(s), %d request(s) since %s", project_id,
              result.minutes, result.requests, start.isoformat())
    return result
