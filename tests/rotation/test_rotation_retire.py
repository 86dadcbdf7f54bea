"""Retiring keys after their grace period, on request, and sweeping strays at Google."""

from __future__ import annotations

from datetime import timedelta

import pytest

from keyward import inventory
from keyward.errors import UsageError
from keyward.rotation import service
from keyward.rotation.records import installation_id
from keyward.storage import store as q
from keyward.storage.models import Event
from sqlalchemy import select


def state_of(ctx, key_id):
    with ctx.store.read() as s:
        return q.get_key(s, key_id).state


def live_ids(emu, project):
    return sorted(k["name"].rsplit("/", 1)[-1] for k in emu.keys(project))


def warnings_of(ctx):
    with ctx.store.read() as s:
        return [e.message for e in s.scalars(select(Event).order_by(Event.id)) if e.level == "warning"]


def test_retire_due_when_grace_over_deletes_previous_key_at_google(ctx, emu, deps, clock, published):
    first = service.rotate_project(ctx, "alpha-proj", deps=deps)
    clock.advance(timedelta(days=16))
    second = service.rotate_project(ctx, "alpha-proj", deps=deps)
    with ctx.store.read() as s:
        old_secret = q.get_key(s, first.new_key_id).secret

    clock.advance(timedelta(hours=23))
    assert service.retire_due(ctx, deps=deps) == []
    assert emu.key_string_valid(old_secret)  # still inside the grace period
    clock.advance(timedelta(hours=1))
    assert service.retire_due(ctx, deps=deps) == [first.new_key_id]

    assert state_of(ctx, first.new_key_id) == "retired"
    assert not emu.key_string_valid(old_secret)
    assert live_ids(emu, "alpha-proj") == [second.new_key_id]
    assert published[-1] == (["main"], "retirement")
    assert service.retire_due(ctx, deps=deps) == []  # nothing left, nothing called twice


def test_retire_due_when_key_already_deleted_at_google_counts_as_done(ctx, emu, deps, clock):
    first = service.rotate_project(ctx, "alpha-proj", deps=deps)
    clock.advance(timedelta(days=16))
    service.rotate_project(ctx, "alpha-proj", deps=deps)
    with ctx.store.read() as s:
        name = q.get_key(s, first.new_key_id).google_name
    from keyward.rotation.deps import default_client

    default_client(ctx, deps.sleep).delete_key(name)  # someone deleted it in the console
    clock.advance(timedelta(days=2))

    assert service.retire_due(ctx, deps=deps) == [first.new_key_id]
    assert state_of(ctx, first.new_key_id) == "retired"


def test_retire_due_when_manual_project_replaced_by_hand_marks_retired_and_warns(ctx, emu, deps, clock):
    old = inventory.add_key(ctx, "gamma-proj", emu.create_manual_key("gamma-proj")["keyString"])
    clock.advance(timedelta(days=16))
    new = inventory.add_key(ctx, "gamma-proj", emu.create_manual_key("gamma-proj")["keyString"],
                            replaces=old.key_id)
    calls_before = len(emu.snapshot()["keys"])
    clock.advance(timedelta(hours=25))

    assert service.retire_due(ctx, deps=deps) == [old.key_id]

    assert state_of(ctx, old.key_id) == "retired" and state_of(ctx, new.key_id) == "active"
    assert len(emu.keys("gamma-proj")) == 2 == calls_before  # no call to Google for it
    assert any(old.key_id in m and "AI Studio" in m for m in warnings_of(ctx))


def test_retire_key_when_active_refuses_and_when_previous_deletes(ctx, emu, deps, clock):
    first = service.rotate_project(ctx, "alpha-proj", deps=deps)
    with pytest.raises(UsageError, match="active key"):
        service.retire_key(ctx, first.new_key_id, deps=deps)
    clock.advance(timedelta(days=16))
    service.rotate_project(ctx, "alpha-proj", deps=deps)

    message = service.retire_key(ctx, first.new_key_id, deps=deps)

    assert "deleted at Google" in message
    assert first.new_key_id not in live_ids(emu, "alpha-proj")
    assert service.retire_key(ctx, first.new_key_id, deps=deps) == f"key {first.new_key_id} is already retired"


def test_sweep_when_stray_keyward_key_exists_lists_it_and_prunes_only_when_asked(ctx, emu, deps):
    kept = service.rotate_project(ctx, "alpha-proj", deps=deps)
    from keyward.rotation.deps import default_client

    client = default_client(ctx, deps.sleep)
    client.create_key("alpha-proj", "kw-stray-1", display_name="keyward kw-stray-1",
                      annotations={"keyward.io/managed": "true", "keyward.io/key-id": "kw-stray-1",
                                   "keyward.io/installation": installation_id(ctx)})
    emu.create_manual_key("alpha-proj")  # not keyward's: never swept

    found = service.sweep(ctx, deps=deps)

    assert [(i.project_id, i.key_id, i.deleted) for i in found] == [("alpha-proj", "kw-stray-1", False)]
    assert "kw-stray-1" in live_ids(emu, "alpha-proj")
    pruned = service.sweep(ctx, prune=True, deps=deps)
    assert [(i.key_id, i.deleted) for i in pruned] == [("kw-stray-1", True)]
    assert "kw-stray-1" not in live_ids(emu, "alpha-proj")
    assert kept.new_key_id in live_ids(emu, "alpha-proj") and len(emu.keys("alpha-proj")) == 2
    assert service.sweep(ctx, deps=deps) == []


@pytest.mark.parametrize("owner", ["kw-someone-else", None])
def test_sweep_when_key_of_other_installation_lists_it_apart_and_prune_keeps_it(ctx, emu, deps, owner):
    from keyward.rotation.deps import default_client

    annotations = {"keyward.io/managed": "true", "keyward.io/key-id": "kw-theirs"}
    if owner:
        annotations["keyward.io/installation"] = owner
    default_client(ctx, deps.sleep).create_key("alpha-proj", "kw-theirs", display_name="theirs",
                                               annotations=annotations)

    found = service.sweep(ctx, prune=True, deps=deps)

    assert [(i.key_id, i.deleted, i.other_installation) for i in found] == [
        ("kw-theirs", False, owner or "unknown")]
    assert "kw-theirs" in live_ids(emu, "alpha-proj")


def test_sweep_when_key_row_retired_but_live_at_google_reports_it(ctx, emu, deps):
    first = service.rotate_project(ctx, "alpha-proj", deps=deps)
    with ctx.store.write() as s:
        q.get_key(s, first.new_key_id).state = "retired"

    found = service.sweep(ctx, deps=deps)

    assert [(i.key_id, i.state) for i in found] == [(first.new_key_id, "retired")]


def test_sweep_when_project_cannot_be_listed_reports_error_and_sweeps_others(ctx, emu, deps):
    emu.deny_permission("alpha-proj", "apikeys.keys.list")

    found = service.sweep(ctx, deps=deps)

    assert [(i.project_id, "apikeys.keys.list" in (i.error or "")) for i in found] == [("alpha-proj", True)]
