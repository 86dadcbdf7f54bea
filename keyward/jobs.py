"""The daemon's periodic jobs, each one service call wrapped so that a failure is logged, never fatal.

A job that raises would end nothing (APScheduler catches it) but would also say nothing useful;
here each failure becomes one log line naming the job, and the next run tries again. Services
already isolate projects from each other and raise one summary (PassFailed) at the end.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Callable

import keyward
from keyward.errors import KeywardError, PassFailed

if TYPE_CHECKING:
    from keyward.config import Config
    from keyward.context import Context

log = logging.getLogger(__name__)

HEARTBEAT = "heartbeat"
# Jobs only the leader runs when several daemons share one database (keyward.leadership).
LEADER_ONLY = frozenset({"rotation", "limits", "usage", "recheck", "prune", "resume"})


@dataclass(frozen=True)
class JobSpec:
    name: str
    seconds: float
    func: Callable[["Context"], object]
    jitter: float = 0.0


def heartbeat(ctx: "Context", started_at: datetime | None = None, *, stopping: bool = False) -> None:
    """Tell `keyward status` that the daemon is alive, or stopped cleanly. With several daemons on
    one database only the leader writes this shared row (status lists every daemon under hosts),
    so it neither flips between hosts nor says "stopped" when a follower stops."""
    from keyward.leadership import is_leader
    from keyward.storage import store as q

    if not is_leader(ctx):
        return

    now = ctx.now()
    value = json.dumps({
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "version": keyward.__version__,
        "started_at": (started_at or now).isoformat(),
        "at": now.isoformat(),
        "stopped_at": now.isoformat(timespec="seconds") if stopping else None,
    })
    with ctx.store.write() as s:
        q.set_meta(s, HEARTBEAT, value, now=now)


def poll_usage(ctx: "Context") -> None:
    from keyward.usage import accounting

    if ctx.config.usage.monitoring:
        accounting.poll_monitoring(ctx)


def publish(ctx: "Context") -> None:
    from keyward.publishing import service

    service.publish_pools(ctx, None, trigger="timer")


def publish_timer(ctx: "Context") -> None:
    """The publishing timer; on the leader it also replaces keys reported invalid to any host
    (within seconds, not a rotation_check later). Not part of the publish before READY."""
    from keyward.leadership import is_leader

    publish(ctx)
    if is_leader(ctx):
        from keyward.rotation.service import replace_reported

        replace_reported(ctx)


def rotation(ctx: "Context") -> None:
    """Finish interrupted rotations, rotate what is due, retire what outlived its grace; all of
    it holding the rotator lease, so `keyward rotate` never runs at the same time."""
    from keyward import leadership
    from keyward.errors import AlreadyRunning
    from keyward.rotation import service

    failures: dict[str, str] = {}
    member = getattr(ctx.store, "keyward_leadership", None)
    try:
        with leadership.rotating(ctx, wait=leadership.lease_ttl(ctx).total_seconds(), kind="daemon",
                                 instance_id=member.instance_id if member else None):
            for step in (service.resume_open, service.rotate_all, service.retire_due):
                try:
                    step(ctx)
                except PassFailed as exc:
                    failures.update(exc.failures)
    except AlreadyRunning as exc:
        log.info("rotation pass skipped: %s", exc)
        return
    for warning in service.due_warnings(ctx):
        log.warning("%s", warning)
    if failures:
        raise PassFailed(failures)


def refresh_limits(ctx: "Context") -> None:
    from keyward.usage import accounting

    accounting.refresh_limits(ctx)


def recheck_invalid(ctx: "Context") -> None:
    from keyward import verification

    verification.recheck_invalid(ctx)


def prune(ctx: "Context") -> None:
    from keyward.usage import accounting

    accounting.prune(ctx)


def job_table(config: "Config") -> list[JobSpec]:
    """Every job with its interval from the config; the order is the order of a `--once` pass."""
    d = config.daemon
    jitter = d.jitter.total_seconds()
    return [
        JobSpec("rotation", d.rotation_check.total_seconds(), rotation, jitter),
        JobSpec("limits", d.rotation_check.total_seconds(), refresh_limits, jitter),
        JobSpec("usage", config.usage.poll_interval.total_seconds(), poll_usage, jitter),
        JobSpec("publish", config.selection.interval.total_seconds(), publish_timer),
        JobSpec("recheck", d.verify_invalid.total_seconds(), recheck_invalid, jitter),
        JobSpec("prune", d.prune_interval.total_seconds(), prune, jitter),
    ]


def run_job(spec: JobSpec, ctx: "Context") -> bool:
    """Run one job; log its failure and return False instead of raising. A leader-only job
    is skipped (and counts as done) on a daemon that does not hold the leader lease."""
    from keyward import leadership

    if spec.name in LEADER_ONLY and not leadership.is_leader(ctx):
        log.debug("job %s skipped: another daemon leads", spec.name, extra={"job": spec.name})
        return True
    started = time.monotonic()
    try:
        spec.func(ctx)
    except KeywardError as exc:
        log.error("job %s failed: %s", spec.name, exc, extra={"job": spec.name})
        return False
    except Exception as exc:  # named and redacted in one place; the traceback only at debug level
        from keyward.failures import named

        log.error("job %s failed: %s", spec.name, named(exc), extra={"job": spec.name})
        log.debug("job %s traceback", spec.name, exc_info=True, extra={"job": spec.name})
        return False
    log.debug("job %s done in %.0f ms", spec.name, (time.monotonic() - started) * 1000)
    return True
