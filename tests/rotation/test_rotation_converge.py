"""Rotation steps converge whatever Google answers: ALREADY_EXISTS in the call or only in the
operation, a key invisible until its create operation is done, an etag that moved on. A rotation
is marked failed only once its new key is known deleted or never created."""

from __future__ import annotations

from datetime import timedelta

import pytest

from keyward.errors import RotationError, Transient
from keyward.rotation import service
from keyward.rotation import state as st
from keyward.rotation.deps import default_client
from keyward.rotation.service import _plan
from keyward.storage import store as q
from keyward.storage.models import Rotation

from rotation_world import sa


def plan(ctx, project_id="alpha-proj"):
    with ctx.store.read() as s:
        project = q.get_project(s, project_id)
        pk = project.id
    return _plan(ctx, pk, project_id, st.FORCED, None)


def row(ctx, rotation_pk):
    with ctx.store.read() as s:
        r = s.get(Rotation, rotation_pk)
        return r.step, r.outcome, r.error


def create_behind_keywards_back(ctx, deps, key_id, project_id="alpha-proj"):
    """A create keyward sent whose answer was lost: the key is being made at Google."""
    client = default_client(ctx, deps.sleep)
    client.start_create(project_id, key_id, display_name=f"keyward {key_id}",
                        service_account=sa(project_id))


@pytest.mark.parametrize("where", ["operation", "call"])
def test_drive_when_answer_lost_and_key_still_invisible_stays_open_then_adopts(ctx, emu, deps, where):
    emu.already_exists_in = where
    emu.operation_polls, emu.operation_seconds = 1000, 30
    rotation_pk = plan(ctx)
    key_id = rq_key_id(ctx, rotation_pk)
    create_behind_keywards_back(ctx, deps, key_id)

    with pytest.raises(Transient, match="not visible yet|not done after"):
        service.rotate_project(ctx, "alpha-proj", force=True, deps=deps)

    step, outcome, error = row(ctx, rotation_pk)
    assert outcome is None and step in (st.PLANNED, st.CREATING), "the rotation stays open"
    assert error
    with ctx.store.read() as s:
        assert q.find_key(s, key_id) is None and q.get_project(s, "alpha-proj").rotation_failures == 0
    emu.advance(31)  # Google finishes the first create
    result = service.rotate_project(ctx, "alpha-proj", deps=deps)
    assert result.status == "rotated" and result.new_key_id == key_id
    assert [k["name"].rsplit("/", 1)[-1] for k in emu.keys("alpha-proj")] == [key_id]


def rq_key_id(ctx, rotation_pk):
    with ctx.store.read() as s:
        return s.get(Rotation, rotation_pk).new_key_id


@pytest.mark.parametrize("where", ["operation", "call"])
def test_drive_when_create_retried_after_google_made_the_key_adopts_it(ctx, emu, deps, where):
    emu.already_exists_in = where
    emu.operation_polls, emu.operation_seconds = 0, 0
    rotation_pk = plan(ctx)
    key_id = rq_key_id(ctx, rotation_pk)
    # Visible at once, but keyward's look-up raced it: simulate by creating after planning and
    # making the first look-up miss (a 404 answered just before Google finished).
    emu.inject_fault("apikeys", path_regex=f"keys/{key_id}$", status=404, count=1)
    create_behind_keywards_back(ctx, deps, key_id)

    result = service.rotate_project(ctx, "alpha-proj", deps=deps)

    assert emu.snapshot()["faults"] == [], "the first look-up must have missed the key"
    assert result.status == "rotated" and result.new_key_id == key_id
    assert len(emu.keys("alpha-proj")) == 1


def test_drive_when_key_id_held_by_deleted_key_fails_without_backoff(ctx, emu, deps):
    rotation_pk = plan(ctx)
    key_id = rq_key_id(ctx, rotation_pk)
    client = default_client(ctx, deps.sleep)
    created = client.create_key("alpha-proj", key_id, display_name="x", service_account=sa("alpha-proj"))
    client.delete_key(created.name)

    with pytest.raises(RotationError, match="deleted at Google"):
        service.rotate_project(ctx, "alpha-proj", deps=deps)

    assert row(ctx, rotation_pk)[1] == "failed"
    with ctx.store.read() as s:
        assert q.get_project(s, "alpha-proj").rotation_failures == 0
    assert service.rotate_project(ctx, "alpha-proj", deps=deps).status == "rotated"


def test_drive_when_create_refused_marks_failed_since_no_key_was_made(ctx, emu, deps):
    emu.block_service_account_keys("alpha-proj")

    with pytest.raises(Exception):
        service.rotate_project(ctx, "alpha-proj", deps=deps)

    with ctx.store.read() as s:
        rows = s.query(Rotation).all()
        assert [(r.outcome, r.step) for r in rows] == [("failed", st.FAILED)]
    assert emu.keys("alpha-proj") == []


def test_drive_when_lookup_fails_leaves_rotation_open_not_failed(ctx, emu, deps):
    rotation_pk = plan(ctx)
    emu.deny_permission("alpha-proj", "apikeys.keys.get")

    with pytest.raises(Exception, match="apikeys.keys.get"):
        service.rotate_project(ctx, "alpha-proj", deps=deps)

    step, outcome, error = row(ctx, rotation_pk)
    assert outcome is None and "apikeys.keys.get" in error
    emu.deny_permission("alpha-proj", "apikeys.keys.get", denied=False)
    assert service.rotate_project(ctx, "alpha-proj", deps=deps).status == "rotated"


def test_discard_when_etag_moved_on_after_creation_deletes_new_key(ctx, emu, deps, clock):
    first = service.rotate_project(ctx, "alpha-proj", deps=deps)
    clock.advance(timedelta(days=16))
    emu.inject_fault("generativelanguage", status=400, count=1)  # the new key fails verification

    with pytest.raises(RotationError, match="failed verification"):
        service.rotate_project(ctx, "alpha-proj", deps=deps)

    with ctx.store.read() as s:
        failed = [k for k in q.list_keys(s, "alpha-proj") if k.state == "failed"]
        stored_etag = failed[0].etag
    at_google = {k["name"].rsplit("/", 1)[-1]: k for k in emu.keys("alpha-proj", show_deleted=True)}
    gone = at_google[failed[0].key_id]
    assert gone.get("deleteTime"), "the rejected key must be deleted at Google"
    assert stored_etag != gone["etag"]
    assert [k for k, v in at_google.items() if not v.get("deleteTime")] == [first.new_key_id]


def test_rotate_when_two_runners_race_and_already_exists_only_in_operation_promotes_once(
        make_ctx, emu, deps, sqlite_url):
    import threading

    emu.already_exists_in = "operation"
    emu.operation_polls, emu.operation_seconds = 2, 30
    contexts = [make_ctx(database_url=sqlite_url) for _ in range(2)]
    contexts[0].store
    results, errors = [], []

    def run(c):
        try:
            results.append(service.rotate_project(c, "alpha-proj", force=True, deps=deps))
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(c,)) for c in contexts]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    assert errors == [] and {r.status for r in results} == {"rotated"}
    assert len(emu.keys("alpha-proj")) == 1
    with contexts[0].store.read() as s:
        assert [(r.outcome) for r in s.query(Rotation).all()] == ["done"]
