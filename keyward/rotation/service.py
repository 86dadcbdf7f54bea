"""Rotating the keys of managed projects: which are due, starting a journaled rotation, resuming
the ones a crash left open, and what to tell the operator about projects keyward may not touch.

`rotate_project` returns only when the new key is verified and active (or raises saying why not);
`rotate_all` tries every project, so one project's failure never stops the others, and raises one
PassFailed summary at the end. Retiring and sweeping live in `retire` and are re-exported here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from keyward.errors import KeywardError, PassFailed, UsageError
from keyward.keyids import rotation_key_id
from keyward.leadership import fenced_write
from keyward.rotation import state as st
from keyward.rotation.deps import Deps, crash_point
from keyward.rotation.retire import SweepItem, retire_due, retire_key, sweep
from keyward.rotation.records import RotationResult, utc
from keyward.rotation.steps import Runner
from keyward.storage import rotation_queries as rq
from keyward.storage import store as q
from keyward.storage.models import INVALID, Project

if TYPE_CHECKING:
    from keyward.context import Context

log = logging.getLogger(__name__)

__all__ = ["RotationResult", "SweepItem", "rotate_project", "rotate_all", "resume_open",
           "retire_due", "retire_key", "replace_invalid", "replace_reported", "sweep", "due_warnings"]


def rotate_project(ctx: "Context", project_id: str, *, force: bool = False, dry_run: bool = False,
                   reason: str | None = None, deps: Deps | None = None) -> RotationResult:
    """Rotate `project_id` if it is due (or `force`), finishing any open rotation of it first.

    Return the result (rotated, not-due, backoff, would-rotate). Raise UsageError for an unmanaged
    project, the translated Google error (PermissionMissing, ApiDisabled, PolicyBlocked, Transient)
    or RotationError when the new key cannot be made active; the journal says where it stopped.
    With `dry_run` nothing is written, here or at Google.
    """
    runner = Runner(ctx, deps)
    now = ctx.now()
    with ctx.store.read() as s:
        project = q.get_project(s, project_id)
        if not project.managed:
            raise UsageError(_unmanaged(project_id))
        if not project.service_account:
            raise UsageError(f"project {project_id} is managed but has no service_account; new "
                             "keys are auth keys bound to one")
        project_pk, failures, backoff_until = project.id, project.rotation_failures, project.rotation_backoff_until
        open_row = rq.open_rotation(s, project_pk)
        active = rq.active_key(s, project_pk)
        facts = st.ActiveKey(active.key_id, active.kind, active.rotate_after) if active else None
        latest = rq.latest_key(s, project_pk)
        last_invalid = latest is not None and latest.state == INVALID
        old_key_id = active.key_id if active else (latest.key_id if last_invalid and latest else None)

    if open_row is not None:
        if dry_run:
            return RotationResult(project_id, "would-rotate",
                                  f"would finish the open rotation to {open_row.new_key_id} "
                                  f"(at step {open_row.step})", open_row.reason, open_row.new_key_id,
                                  open_row.old_key_id)
        return runner.drive(open_row.id)

    why = reason or st.due_reason(facts, now, force=force, invalid_key=last_invalid)
    if why is None:
        return RotationResult(project_id, "not-due", f"not due: key {facts.key_id} rotates after "
                              f"{utc(facts.rotate_after)}" if facts and facts.rotate_after else "not due",
                              old_key_id=old_key_id)
    if not force and reason is None and st.in_backoff(backoff_until, now):
        return RotationResult(project_id, "backoff", f"backing off after {failures} failed "
                              f"attempt(s) until {utc(backoff_until)} (use --now to try anyway)",
                              why, old_key_id=old_key_id)
    if dry_run:
        return RotationResult(project_id, "would-rotate", _describe(project_id, why, old_key_id),
                              why, old_key_id=old_key_id)
    if why == st.INVALID and old_key_id is not None:
        held = _check_invalid(ctx, runner, project_pk, project_id, old_key_id, reported=reason is not None)
        if held is not None:
            return held
    rotation_pk = _plan(ctx, project_pk, project_id, why, old_key_id)
    return runner.drive(rotation_pk)


def _check_invalid(ctx: "Context", runner: Runner, project_pk: int, project_id: str, key_id: str,
                   *, reported: bool) -> RotationResult | None:
    """Before a key reported invalid costs a new one: at most one replacement per project per
    rotation.invalid_interval, and a live Gemini call must confirm the verdict. Return the result
    that stops the rotation, or None to go on.

    Programs report what they saw; a wrong or stale verdict (an API briefly disabled, a report
    about an older key) must not turn every report into a key at Google. A key Gemini accepts is
    put back into service; an inconclusive check waits for the next pass.
    """
    from keyward.storage.models import ACTIVE

    now = ctx.now()
    interval = ctx.config.rotation.invalid_interval
    with ctx.store.read() as s:
        last = rq.last_rotation_start(s, project_pk, st.INVALID)
        key = q.get_key(s, key_id)
        secret, pool = key.secret, key.project.pool.name
    if last is not None and now - utc_aware(last) < interval:
        message = (f"key {key_id} was reported invalid, but project {project_id} had a key "
                   f"replaced at {utc(last)}; at most one replacement per "
                   f"{int(interval.total_seconds() // 60)} min (rotation.invalid_interval)")
        if reported:
            with ctx.store.write() as s:
                q.journal(s, "rotation.invalid", message + "; report journaled, not acted on",
                          level="warning", project=project_id, key_id=key_id, now=now)
        return RotationResult(project_id, "backoff", message, st.INVALID, old_key_id=key_id)
    if not secret:
        return None
    verdict = runner.deps.verify(secret)
    if verdict.kind in ("ok", "quota"):
        with fenced_write(ctx) as s:
            row = q.get_key(s, key_id)
            if row.state == INVALID and row.replaced_by is None:
                row.state, row.invalid_reason, row.invalid_at = ACTIVE, None, None
                q.journal(s, "key.reinstated", f"key {key_id} was reported invalid, but Gemini "
                          "accepts it: back in service, no new key made", level="warning",
                          project=project_id, key_id=key_id, pool=pool, now=now)
        _publish_quietly(ctx, pool)
        return RotationResult(project_id, "not-due", f"key {key_id} was reported invalid but "
                              "Gemini accepts it; it is back in service", st.INVALID, old_key_id=key_id)
    if verdict.kind == "transient":
        return RotationResult(project_id, "backoff", f"key {key_id} was reported invalid; Gemini "
                              f"could not confirm it yet ({verdict.detail}); the next pass checks "
                              "again", st.INVALID, old_key_id=key_id)
    return None


def _publish_quietly(ctx: "Context", pool: str) -> None:
    from keyward.publishing.service import publish_pools

    try:
        publish_pools(ctx, [pool], trigger="reinstated")
    except KeywardError as exc:
        log.warning("publishing pool %s after reinstating a key failed: %s", pool, exc)


def utc_aware(value):
    from datetime import timezone

    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


def _unmanaged(project_id: str) -> str:
    return (f"project {project_id} is not managed: keyward does not create its keys. Create a key "
            f"in AI Studio and run `keyward key add --project {project_id} --replaces KEY`")


def _plan(ctx: "Context", project_pk: int, project_id: str, reason: str, old_key_id: str | None) -> int:
    """Write the `planned` row (with the keyId Google will be asked for) before any Google call."""
    now = ctx.now()
    with fenced_write(ctx) as s:
        rq.lock_project(s, project_pk)
        existing = rq.open_rotation(s, project_pk)
        if existing is not None:  # another runner started one meanwhile: finish that instead
            return existing.id
        new_key_id = rotation_key_id(now)
        row = rq.add_rotation(s, project_pk, new_key_id=new_key_id, old_key_id=old_key_id,
                              reason=reason, step=st.PLANNED, now=now)
        q.journal(s, "rotation.planned", f"rotation planned ({reason}): new key {new_key_id}"
                  + (f" replaces {old_key_id}" if old_key_id else ""),
                  project=project_id, key_id=new_key_id, now=now)
        rotation_pk = row.id
    crash_point("planned")
    return rotation_pk


def _describe(project_id: str, reason: str, old_key_id: str | None) -> str:
    what = {st.MIGRATE: "replace the standard key with an auth key",
            st.INITIAL: "create the project's first key", st.INVALID: "replace the rejected key",
            st.DUE: "rotate the key (due)", st.FORCED: "rotate the key now (--now)"}.get(reason, reason)
    tail = f"; {old_key_id} would stay valid for the grace period" if old_key_id else ""
    return f"would {what}: create, verify and publish a new auth key{tail}"


def rotate_all(ctx: "Context", *, force: bool = False, dry_run: bool = False,
               projects: Sequence[str] | None = None,
               on_result: Callable[[RotationResult], None] | None = None,
               deps: Deps | None = None) -> list[RotationResult]:
    """Rotate every managed project that is due (or the named `projects`); return the results.

    Unmanaged projects are skipped; naming one (or an unknown project) raises UsageError/NotFound
    before anything is tried. Each failure is logged and recorded; after all
    projects were tried, raise PassFailed naming every failed project with its error.
    """
    with ctx.store.read() as s:
        if projects is None:
            names = [p.project_id for p in q.list_projects(s) if p.managed]
        else:
            names = list(projects)
            for name in names:  # a typo or an unmanaged project is a usage error, not a failure
                if not q.get_project(s, name).managed:
                    raise UsageError(_unmanaged(name))
    results: list[RotationResult] = []
    failures: dict[str, str] = {}
    for name in names:
        try:
            result = rotate_project(ctx, name, force=force, dry_run=dry_run, deps=deps)
        except KeywardError as exc:
            failures[name] = str(exc)
            result = RotationResult(name, "failed", str(exc))
            log.error("rotating project %s failed: %s", name, exc)
        except Exception as exc:  # one project's bug must not stop the pass
            failures[name] = f"internal error: {exc.__class__.__name__}: {exc}"
            result = RotationResult(name, "failed", failures[name])
            log.exception("rotating project %s failed unexpectedly", name)
        results.append(result)
        if on_result is not None:
            on_result(result)
    if failures:
        raise PassFailed(failures)
    return results


def resume_open(ctx: "Context", *, deps: Deps | None = None) -> list[RotationResult]:
    """Finish every rotation a crash left open; return one result per row (failures included,
    as status "failed": the daemon logs them and the rows stay resumable). Never raises for a
    single row."""
    with ctx.store.read() as s:
        rows = [(r.id, s.get(Project, r.project_pk).project_id) for r in rq.open_rotations(s)]
    runner = Runner(ctx, deps)
    results = []
    for rotation_pk, project_id in rows:
        try:
            results.append(runner.drive(rotation_pk))
        except KeywardError as exc:
            log.error("resuming the rotation of project %s failed: %s", project_id, exc)
            results.append(RotationResult(project_id, "failed", str(exc)))
    return results


def replace_invalid(ctx: "Context", key_id: str, *, deps: Deps | None = None) -> RotationResult | None:
    """React to a key Gemini rejected while in use (state `invalid`).

    Managed project without another active key: confirm the verdict with a live Gemini call and,
    at most once per project per rotation.invalid_interval, rotate now (reason "invalid"); return
    the result, failed results included (never raises a KeywardError: the caller is recording
    usage). A daemon that does not lead leaves it to the leader.
    Unmanaged: journal an error telling the operator what to do and return None.
    """
    now = ctx.now()
    with ctx.store.read() as s:
        key = q.get_key(s, key_id)
        project = key.project
        project_id, managed = project.project_id, project.managed
        other = rq.active_key(s, project.id)
        other_id = other.key_id if other is not None and other.key_id != key_id else None
    if not managed:
        with ctx.store.write() as s:
            q.journal(s, "rotation.invalid",
                      f"Gemini rejected key {key_id}; keyward does not manage project {project_id}: "
                      f"create a new key in AI Studio and run `keyward key add --project {project_id} "
                      f"--replaces {key_id}`", level="error", project=project_id, key_id=key_id, now=now)
        return None
    if other_id is not None:
        return RotationResult(project_id, "not-due", f"key {key_id} was rejected but {other_id} "
                              "is active; no rotation needed", st.INVALID, old_key_id=key_id)
    from keyward import leadership

    if not leadership.is_leader(ctx):
        log.info("key %s of project %s reported invalid; the leading daemon replaces it",
                 key_id, project_id)
        return RotationResult(project_id, "pending", "another daemon leads and replaces the key",
                              st.INVALID, old_key_id=key_id)
    try:
        member = getattr(ctx.store, "keyward_leadership", None)
        with leadership.rotating(ctx, wait=60, kind="daemon" if member else "command",
                                 instance_id=member.instance_id if member else None):
            return rotate_project(ctx, project_id, force=True, reason=st.INVALID, deps=deps)
    except KeywardError as exc:
        log.error("replacing rejected key %s of project %s failed: %s", key_id, project_id, exc)
        return RotationResult(project_id, "failed", str(exc), st.INVALID, old_key_id=key_id)


def replace_reported(ctx: "Context", *, deps: Deps | None = None) -> list[RotationResult]:
    """Replace the invalid keys that wait for it: managed projects whose latest key was reported
    invalid (to any host) and that have no active key nor a rotation in flight. Return the results.

    The leading daemon runs this on its publishing timer, so a report received by another host
    costs seconds, not a rotation_check interval. Confirmation and the per-project limit apply
    (see replace_invalid); the query is cheap when nothing waits.
    """
    now, interval = ctx.now(), ctx.config.rotation.invalid_interval
    with ctx.store.read() as s:
        waiting = []
        for key in rq.reported_invalid_waiting(s):
            last = rq.last_rotation_start(s, key.project_pk, st.INVALID)
            if last is None or now - utc_aware(last) >= interval:  # else: already journaled once
                waiting.append(key.key_id)
    return [r for r in (replace_invalid(ctx, key_id, deps=deps) for key_id in waiting) if r is not None]


def due_warnings(ctx: "Context") -> list[str]:
    """Return one line per thing the operator must do by hand: an unmanaged project's key past its
    rotation date, a standard key still in use (managed ones are migrated by the next rotation)."""
    now = ctx.now()
    lines: list[str] = []
    with ctx.store.read() as s:
        for project in q.list_projects(s):
            active = rq.active_key(s, project.id)
            if active is None:
                continue
            pid, kid = project.project_id, active.key_id
            fix = (f"create an auth key in AI Studio and run `keyward key add --project {pid} "
                   f"--replaces {kid}`")
            if active.kind == "standard":
                lines.append(f"project {pid}: key {kid} is a standard (AIza) key, which Gemini no "
                             "longer accepts; " + ("the next rotation replaces it with an auth key"
                                                   if project.managed else fix))
            elif not project.managed and active.rotate_after is not None and active.rotate_after <= now:
                lines.append(f"project {pid}: key {kid} was due for rotation on "
                             f"{utc(active.rotate_after)}; {fix}")
    return lines
