"""The end of a key's life: retiring keys whose grace period is over, retiring one on request, and
sweeping keys keyward created at Google but no longer knows.

Keys keyward created in a managed project are deleted at Google (with their etag; a key already
gone counts as deleted). Keys the operator made by hand, and every key of an unmanaged project, are
only marked retired, with a journal warning telling the operator to delete them in AI Studio or the
Cloud console: keyward never calls Google for a project it does not manage.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from keyward.errors import KeywardError, PassFailed, UsageError
from keyward.rotation import state as st
from keyward.rotation.deps import Deps
from keyward.leadership import fenced_write, verify_fences
from keyward.rotation.records import (INSTALLATION_ANNOTATION, KEY_ID_ANNOTATION,
                                      MANAGED_ANNOTATION, installation_id)
from keyward.rotation.steps import Runner
from keyward.storage import rotation_queries as rq
from keyward.storage import store as q
from keyward.storage.models import ACTIVE, FAILED, INVALID, PENDING, PREVIOUS, RETIRED

if TYPE_CHECKING:
    from keyward.context import Context

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Retiring:
    key_id: str
    project_id: str
    mode: str
    google_name: str | None
    etag: str | None
    masked: str
    pool: str


def retire_due(ctx: "Context", *, deps: Deps | None = None) -> list[str]:
    """Retire every `previous` key whose grace period is over; return the retired key ids.

    Raise PassFailed after trying them all if any could not be deleted at Google (they stay
    `previous` and the next pass tries again).
    """
    now = ctx.now()
    with ctx.store.read() as s:
        due = [_facts(k) for k in rq.previous_keys_due(s, now)]
    runner = Runner(ctx, deps)
    retired, failures = [], {}
    for item in due:
        try:
            _retire(ctx, runner, item, expected=(PREVIOUS,), why="its grace period is over")
            retired.append(item.key_id)
        except KeywardError as exc:
            failures[f"{item.project_id} key {item.key_id}"] = str(exc)
            log.error("retiring key %s of project %s failed: %s", item.key_id, item.project_id, exc)
    if retired:
        _republish(ctx, sorted({item.pool for item in due if item.key_id in retired}))
    if failures:
        raise PassFailed(failures)
    return retired


def _republish(ctx: "Context", pools: list[str]) -> None:
    """Let the publisher look again: a sink still holding a retired key must move off it."""
    from keyward.publishing.service import publish_pools

    try:
        publish_pools(ctx, pools, trigger="retirement")
    except KeywardError as exc:
        log.warning("publishing %s after retiring keys failed: %s", ", ".join(pools), exc)


def retire_key(ctx: "Context", key_id: str, *, deps: Deps | None = None) -> str:
    """Retire `key_id` now, at the operator's request; return a line for the CLI.

    Raise UsageError for the active key (rotate or replace it first) or a key a rotation is still
    creating.
    """
    with ctx.store.read() as s:
        key = q.get_key(s, key_id)
        if key.state == ACTIVE:
            pid = key.project.project_id
            raise UsageError(f"key {key_id} is the active key of project {pid}; replace it first "
                             f"(`keyward rotate --project {pid} --now`, or `keyward key add "
                             f"--project {pid} --replaces {key_id}`)")
        if key.state in (RETIRED, FAILED):
            return f"key {key_id} is already {key.state}"
        if key.state == PENDING and rq.rotation_for_key(s, key_id) is not None \
                and rq.rotation_for_key(s, key_id).finished_at is None:
            raise UsageError(f"key {key_id} is being created by a rotation; finish it with "
                             f"`keyward rotate --project {key.project.project_id}`")
        item = _facts(key)
    _retire(ctx, Runner(ctx, deps), item, expected=(PREVIOUS, PENDING, INVALID),
            why="the operator retired it")
    if item.mode == "delete":
        return f"key {key_id} deleted at Google and retired"
    return (f"key {key_id} retired; keyward did not create it, so delete it yourself in AI Studio "
            "or the Cloud console")


def _facts(key) -> _Retiring:
    return _Retiring(key.key_id, key.project.project_id, st.retire_mode(key.origin, key.project.managed),
                     key.google_name, key.etag, key.masked, key.project.pool.name)


def _retire(ctx: "Context", runner: Runner, item: _Retiring, *, expected: tuple[str, ...], why: str) -> None:
    if item.mode == "delete":
        from keyward.google.apikeys import key_name

        name = item.google_name or key_name(item.project_id, item.key_id)
        verify_fences(ctx)  # a leader that lost its lease deletes nothing
        runner.client.delete_key(name, item.etag)  # re-reads the etag when it moved on
    now = ctx.now()
    with fenced_write(ctx) as s:
        key = q.get_key(s, item.key_id)
        if key.state not in expected:
            return  # another runner (or the operator) got there first
        key.state, key.retired_at = RETIRED, now
        if item.mode == "delete":
            q.journal(s, "key.retired", f"key {item.key_id} deleted at Google: {why}",
                      project=item.project_id, key_id=item.key_id, now=now)
        else:
            q.journal(s, "key.retired",
                      f"key {item.key_id} ({item.masked}) retired: {why}. keyward did not create it; "
                      "delete it in AI Studio (aistudio.google.com/apikey) or the Cloud console "
                      "(APIs & Services → Credentials)", level="warning", project=item.project_id,
                      key_id=item.key_id, now=now)


@dataclass(frozen=True)
class SweepItem:
    """A key keyward created at Google but does not know (or a project that could not be listed,
    with `error`). `state` is the Key row's state when there is one (retired/failed)."""

    project_id: str
    key_id: str | None
    name: str | None
    display_name: str = ""
    state: str | None = None
    deleted: bool = False
    error: str | None = None
    # Set for a key another keyward installation created (its id; "unknown" when the key carries
    # none and this database has no record of it): listed apart, never pruned.
    other_installation: str | None = None


def sweep(ctx: "Context", prune: bool = False, *, deps: Deps | None = None) -> list[SweepItem]:
    """List keys at Google marked as keyward's (annotation keyward.io/managed) that have no live Key
    row; delete them with `prune`. Keys of rotations still in flight are left alone. Keys of
    another installation (annotation keyward.io/installation naming another database, or no such
    annotation and no record here) are listed with `other_installation` and never deleted. A
    project that cannot be listed yields an item with `error`; the others are still swept."""
    with ctx.store.read() as s:
        projects = [(p.id, p.project_id) for p in q.list_projects(s) if p.managed]
    runner = Runner(ctx, deps)
    items: list[SweepItem] = []
    for project_pk, project_id in projects:
        try:
            items.extend(_sweep_project(ctx, runner, project_pk, project_id, prune))
        except KeywardError as exc:
            log.error("sweeping project %s failed: %s", project_id, exc)
            items.append(SweepItem(project_id, None, None, error=str(exc)))
    return items


def _sweep_project(ctx: "Context", runner: Runner, project_pk: int, project_id: str,
                   prune: bool) -> list[SweepItem]:
    at_google = runner.client.list_keys(project_id)
    mine = installation_id(ctx)
    with ctx.store.read() as s:
        by_id = {k: v.state for k, v in rq.keys_by_id(s, project_pk).items()}
        by_name = {k: v.state for k, v in rq.keys_by_google_name(s, project_pk).items()}
        in_flight = rq.open_key_ids(s)
        journaled = rq.rotation_key_ids(s, project_pk)
    found = []
    for key in at_google:
        annotations = key.get("annotations") or {}
        if annotations.get(MANAGED_ANNOTATION) != "true":
            continue
        name = str(key.get("name") or "")
        key_id = annotations.get(KEY_ID_ANNOTATION) or name.rsplit("/", 1)[-1]
        if key_id in in_flight:
            continue
        known = by_name.get(name) or by_id.get(key_id)
        if known is not None and known not in (RETIRED, FAILED):
            continue
        owner = annotations.get(INSTALLATION_ANNOTATION)
        other = None
        if owner is not None and owner != mine:
            other = owner
        elif owner is None and known is None and key_id not in journaled:
            other = "unknown"  # made before installation ids, by a database that is not this one
        if other is not None:
            found.append(SweepItem(project_id, key_id, name, str(key.get("displayName") or ""),
                                   known, False, other_installation=other))
            continue
        deleted = False
        if prune:
            runner.client.delete_key(name, str(key.get("etag") or "") or None)
            deleted = True
            now = ctx.now()
            with ctx.store.write() as s:
                q.journal(s, "key.swept", f"deleted key {key_id} at Google: keyward created it but "
                          "no longer uses it", level="warning", project=project_id, key_id=key_id, now=now)
        found.append(SweepItem(project_id, key_id, name, str(key.get("displayName") or ""), known, deleted))
    return found
