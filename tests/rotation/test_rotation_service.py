"""The rotation service against the emulator over real HTTP: full rotations, verification
failures, migration, initial keys, resuming and the per-project isolation of failures."""

from __future__ import annotations

from datetime import timedelta

import pytest

from keyward.errors import PassFailed, RotationError, UsageError
from keyward.rotation import service
from keyward.storage import store as q
from keyward.storage.models import Event, Rotation
from sqlalchemy import select

from rotation_world import START, sa


def keys_of(ctx, project):
    with ctx.store.read() as s:
        return {k.key_id: (k.state, k.kind, k.origin) for k in q.list_keys(s, project)}


def active_of(ctx, project):
    with ctx.store.read() as s:
        found = [k for k in q.list_keys(s, project) if k.state == "active"]
        assert len(found) <= 1
        return found[0] if found else None


def events(ctx, kind_prefix="rotation."):
    with ctx.store.read() as s:
        return [(e.kind, e.level, e.message) for e in s.scalars(select(Event).order_by(Event.id))
                if e.kind.startswith(kind_prefix)]


def test_rotate_project_when_no_key_creates_verified_auth_key_bound_to_service_account(ctx, emu, deps):
    result = service.rotate_project(ctx, "alpha-proj", deps=deps)

    assert result.status == "rotated" and result.reason == "initial"
    active = active_of(ctx, "alpha-proj")
    assert active.key_id == result.new_key_id and active.kind == "auth" and active.origin == "keyward"
    assert emu.key_string_valid(active.secret)
    at_google = emu.keys("alpha-proj")
    assert len(at_google) == 1
    created = at_google[0]
    assert created["serviceAccountEmail"] == sa("alpha-proj")
    assert created["restrictions"]["apiTargets"] == [{"service": "generativelanguage.googleapis.com"}]
    from keyward.rotation.records import installation_id

    assert created["annotations"] == {"keyward.io/managed": "true", "keyward.io/key-id": active.key_id,
                                      "keyward.io/installation": installation_id(ctx)}
    assert created["displayName"] == f"keyward {active.key_id}"
    assert active.google_name == created["name"] and active.etag  # Google moves the etag on at once
    # rotate_after drawn in [7d, 15d]; the test's random source gives the middle.
    assert active.rotate_after == START + timedelta(days=11)
    kinds = [k for k, _, _ in events(ctx)]
    assert kinds == ["rotation.planned", "rotation.creating", "rotation.created", "rotation.verified",
                     "rotation.promoted", "rotation.done"]


def test_rotate_project_when_key_due_keeps_old_key_valid_as_previous(ctx, emu, deps, clock):
    first = service.rotate_project(ctx, "alpha-proj", deps=deps)
    old_secret = active_of(ctx, "alpha-proj").secret
    clock.advance(timedelta(days=12))

    second = service.rotate_project(ctx, "alpha-proj", deps=deps)

    assert second.status == "rotated" and second.reason == "due"
    assert second.old_key_id == first.new_key_id
    states = keys_of(ctx, "alpha-proj")
    assert states[first.new_key_id][0] == "previous" and states[second.new_key_id][0] == "active"
    assert emu.key_string_valid(old_secret)
    with ctx.store.read() as s:
        old = q.get_key(s, first.new_key_id)
        assert old.grace_until == clock.now + timedelta(hours=24)
        assert old.replaced_by == second.new_key_id


def test_rotate_project_when_not_due_does_nothing_unless_forced(ctx, emu, deps, clock):
    service.rotate_project(ctx, "alpha-proj", deps=deps)
    clock.advance(timedelta(days=1))

    assert service.rotate_project(ctx, "alpha-proj", deps=deps).status == "not-due"
    assert len(emu.keys("alpha-proj")) == 1
    forced = service.rotate_project(ctx, "alpha-proj", force=True, deps=deps)
    assert forced.status == "rotated" and forced.reason == "forced"
    assert len(emu.keys("alpha-proj")) == 2


def test_rotate_project_when_verification_rejects_key_deletes_it_and_backs_off(ctx, emu, deps, clock):
    first = service.rotate_project(ctx, "alpha-proj", deps=deps)
    clock.advance(timedelta(days=16))
    # Gemini answers 400 to the verification call: the new key is not usable.
    emu.inject_fault("generativelanguage", status=400, count=1)

    with pytest.raises(RotationError) as err:
        service.rotate_project(ctx, "alpha-proj", deps=deps)

    assert "failed verification" in str(err.value) and "current key stays active" in str(err.value)
    assert active_of(ctx, "alpha-proj").key_id == first.new_key_id
    live = emu.keys("alpha-proj")
    assert [k["name"].rsplit("/", 1)[-1] for k in live] == [first.new_key_id]
    failed = [kid for kid, (state, _, _) in keys_of(ctx, "alpha-proj").items() if state == "failed"]
    assert len(failed) == 1
    with ctx.store.read() as s:
        project = q.get_project(s, "alpha-proj")
        assert project.rotation_failures == 1
        assert project.rotation_backoff_until == clock.now + timedelta(hours=1)
    assert any(k == "rotation.failed" and level == "error" for k, level, _ in events(ctx))
    # While backing off, a due project waits; the second failure doubles the wait.
    assert service.rotate_project(ctx, "alpha-proj", deps=deps).status == "backoff"
    clock.advance(timedelta(hours=1))
    emu.inject_fault("generativelanguage", status=400, count=1)
    with pytest.raises(RotationError):
        service.rotate_project(ctx, "alpha-proj", deps=deps)
    with ctx.store.read() as s:
        assert q.get_project(s, "alpha-proj").rotation_backoff_until == clock.now + timedelta(hours=2)
    clock.advance(timedelta(hours=2))
    assert service.rotate_project(ctx, "alpha-proj", deps=deps).status == "rotated"
    with ctx.store.read() as s:
        project = q.get_project(s, "alpha-proj")
        assert project.rotation_failures == 0 and project.rotation_backoff_until is None


def test_rotate_project_when_ip_restriction_excludes_verifier_fails_verification(make_ctx, emu, deps):
    ctx = make_ctx(extra="")
    with ctx.store.write() as s:  # the project's keys only work from an address we are not
        q.get_project(s, "beta-proj").allowed_ips = "203.0.113.0/24"

    with pytest.raises(RotationError, match="failed verification"):
        service.rotate_project(ctx, "beta-proj", deps=deps)

    assert emu.keys("beta-proj") == []
    deleted = emu.keys("beta-proj", show_deleted=True)
    assert deleted[0]["restrictions"]["serverKeyRestrictions"] == {"allowedIps": ["203.0.113.0/24"]}


def test_rotate_project_when_verification_transient_leaves_key_pending_then_resumes(ctx, emu, deps, fake_sleep):
    emu.inject_fault("generativelanguage", status=503, count=1000)

    with pytest.raises(RotationError, match="could not be verified yet"):
        service.rotate_project(ctx, "alpha-proj", deps=deps)

    assert fake_sleep.calls  # retried with backoff within the budget before giving up
    assert [s for s, _, _ in keys_of(ctx, "alpha-proj").values()] == ["pending"]
    emu.clear_faults()
    results = service.resume_open(ctx, deps=deps)
    assert [r.status for r in results] == ["rotated"]
    assert active_of(ctx, "alpha-proj") is not None
    assert len(emu.keys("alpha-proj")) == 1


def test_rotate_project_when_active_key_standard_migrates_to_auth_key(ctx, emu, deps):
    from keyward import inventory

    manual = emu.create_manual_key("alpha-proj", kind="standard")
    inventory.add_key(ctx, "alpha-proj", manual["keyString"])

    result = service.rotate_project(ctx, "alpha-proj", deps=deps)

    assert result.reason == "migrate"
    assert active_of(ctx, "alpha-proj").kind == "auth"
    assert service.due_warnings(ctx) == []


def test_rotate_project_when_unmanaged_raises_usage_error_naming_key_add(ctx, deps):
    with pytest.raises(UsageError, match="keyward key add --project gamma-proj"):
        service.rotate_project(ctx, "gamma-proj", deps=deps)


def test_rotate_project_when_dry_run_writes_nothing(ctx, emu, deps):
    result = service.rotate_project(ctx, "alpha-proj", dry_run=True, deps=deps)

    assert result.status == "would-rotate" and "first key" in result.message
    assert emu.keys("alpha-proj") == []
    with ctx.store.read() as s:
        assert s.scalars(select(Rotation)).all() == []


def test_rotate_all_when_one_project_fails_still_rotates_others(ctx, emu, deps):
    emu.deny_permission("alpha-proj", "apikeys.keys.create")
    seen = []

    with pytest.raises(PassFailed) as err:
        service.rotate_all(ctx, deps=deps, on_result=seen.append)

    assert "apikeys.keys.create" in err.value.failures["alpha-proj"]
    assert "roles/serviceusage.apiKeysAdmin" in err.value.failures["alpha-proj"]
    assert [r.project_id for r in seen] == ["alpha-proj", "beta-proj"]  # gamma is unmanaged
    assert active_of(ctx, "beta-proj") is not None
    with ctx.store.read() as s:
        assert q.get_project(s, "alpha-proj").rotation_failures == 1


@pytest.mark.parametrize("scene, words", [
    (lambda emu: emu.disable_service("alpha-proj", "apikeys.googleapis.com"),
     ["API is disabled", "gcloud services enable apikeys.googleapis.com"]),
    (lambda emu: emu.block_service_account_keys("alpha-proj"),
     ["iam.managed.disableServiceAccountApiKeyCreation"]),
])
def test_rotate_all_when_google_refuses_reports_clear_error(ctx, emu, deps, scene, words):
    scene(emu)

    with pytest.raises(PassFailed) as err:
        service.rotate_all(ctx, deps=deps)

    for word in words:
        assert word in err.value.failures["alpha-proj"], err.value.failures["alpha-proj"]
    assert set(err.value.failures) == {"alpha-proj"}
    assert active_of(ctx, "beta-proj") is not None
    assert emu.keys("alpha-proj") == []


@pytest.mark.parametrize("status", [429, 500, 503])
def test_rotate_project_when_google_storms_retries_within_budget(ctx, emu, deps, fake_sleep, status):
    emu.inject_fault("apikeys", status=status, count=3)

    result = service.rotate_project(ctx, "alpha-proj", deps=deps)

    assert result.status == "rotated"
    assert len(fake_sleep.calls) >= 3
    assert len(emu.keys("alpha-proj")) == 1


def test_rotate_project_when_storm_outlasts_budget_leaves_row_to_resume(ctx, emu, deps):
    emu.inject_fault("apikeys", status=503, count=10_000)

    with pytest.raises(PassFailed) as err:
        service.rotate_all(ctx, projects=["alpha-proj"], deps=deps)

    assert "503" in err.value.failures["alpha-proj"] and "retries" in err.value.failures["alpha-proj"]
    emu.clear_faults()
    result = service.rotate_project(ctx, "alpha-proj", deps=deps)  # resumes the open row first
    assert result.status == "rotated"
    assert len(emu.keys("alpha-proj")) == 1


def test_rotate_project_when_google_sends_malformed_json_recovers(ctx, emu, deps):
    emu.inject_fault("apikeys", path_regex=r"/keys$", malformed=True, count=2)

    result = service.rotate_project(ctx, "alpha-proj", deps=deps)

    assert result.status == "rotated"
    assert len(emu.keys("alpha-proj")) == 1


def test_rotate_project_when_verify_disabled_skips_gemini_call(make_ctx, emu, deps):
    ctx = make_ctx(verify=False)
    emu.inject_fault("generativelanguage", status=400, count=5)

    result = service.rotate_project(ctx, "alpha-proj", deps=deps)

    assert result.status == "rotated"
    assert any("verification skipped" in m for _, _, m in events(ctx))


def reject_at_google(ctx, emu, key_id):
    """Make Gemini really reject the key (deleted at Google) and mark it as a report would."""
    from keyward.rotation.deps import default_client

    with ctx.store.write() as s:
        key = q.get_key(s, key_id)
        key.state, name = "invalid", key.google_name
    default_client(ctx, lambda _: None).delete_key(name)


def test_replace_invalid_when_managed_rotates_now_and_retires_rejected_key(ctx, emu, deps):
    first = service.rotate_project(ctx, "alpha-proj", deps=deps)
    reject_at_google(ctx, emu, first.new_key_id)

    result = service.replace_invalid(ctx, first.new_key_id, deps=deps)

    assert result.status == "rotated" and result.reason == "invalid"
    assert active_of(ctx, "alpha-proj").key_id == result.new_key_id
    assert service.retire_due(ctx, deps=deps) == [first.new_key_id]
    assert [k["name"].rsplit("/", 1)[-1] for k in emu.keys("alpha-proj")] == [result.new_key_id]


def test_replace_invalid_when_gemini_accepts_key_reinstates_it_without_new_key(ctx, emu, deps):
    first = service.rotate_project(ctx, "alpha-proj", deps=deps)
    with ctx.store.write() as s:
        q.get_key(s, first.new_key_id).state = "invalid"  # a program's report, not confirmed

    result = service.replace_invalid(ctx, first.new_key_id, deps=deps)

    assert result.status == "not-due" and "back in service" in result.message
    assert active_of(ctx, "alpha-proj").key_id == first.new_key_id
    assert len(emu.keys("alpha-proj")) == 1
    assert any(k == "key.reinstated" for k, _, _ in events(ctx, "key."))


def test_replace_invalid_when_reported_repeatedly_replaces_once_per_interval(ctx, emu, deps, clock):
    first = service.rotate_project(ctx, "alpha-proj", deps=deps)
    made = [first.new_key_id]
    for _ in range(5):  # six reports in all, each about the key then active, each confirmed
        clock.advance(timedelta(minutes=1))
        current = active_of(ctx, "alpha-proj")
        if current is not None:
            reject_at_google(ctx, emu, current.key_id)
            result = service.replace_invalid(ctx, current.key_id, deps=deps)
            if result.status == "rotated":
                made.append(result.new_key_id)

    assert len(made) == 2, "one replacement within rotation.invalid_interval (10 min)"
    journaled = [m for k, _, m in events(ctx) if k == "rotation.invalid"]
    assert journaled and "not acted on" in journaled[0]
    clock.advance(timedelta(minutes=10))
    assert service.rotate_project(ctx, "alpha-proj", deps=deps).status == "rotated"


def test_replace_invalid_when_unmanaged_journals_instructions(ctx, emu, deps):
    from keyward import inventory

    manual = emu.create_manual_key("gamma-proj")
    view = inventory.add_key(ctx, "gamma-proj", manual["keyString"])
    with ctx.store.write() as s:
        q.get_key(s, view.key_id).state = "invalid"

    assert service.replace_invalid(ctx, view.key_id, deps=deps) is None

    messages = [m for k, level, m in events(ctx) if level == "error"]
    assert any(f"keyward key add --project gamma-proj --replaces {view.key_id}" in m for m in messages)


def test_due_warnings_when_unmanaged_key_overdue_or_standard_names_the_fix(ctx, emu, clock):
    from keyward import inventory

    inventory.add_key(ctx, "gamma-proj", emu.create_manual_key("gamma-proj")["keyString"])
    assert service.due_warnings(ctx) == []
    clock.advance(timedelta(days=16))

    lines = service.due_warnings(ctx)

    assert len(lines) == 1 and "project gamma-proj" in lines[0] and "--replaces" in lines[0]


def test_promote_when_two_runners_take_the_same_step_promotes_once(ctx, emu, deps, published):
    from keyward.rotation.steps import Runner

    emu.inject_fault("generativelanguage", status=503, count=1000)
    with pytest.raises(RotationError):
        service.rotate_project(ctx, "alpha-proj", deps=deps)  # leaves the row at "created"
    emu.clear_faults()
    with ctx.store.read() as s:
        row = s.scalars(select(Rotation)).one()
    first, second = Runner(ctx, deps), Runner(ctx, deps)
    first._verify(first.load(row.id))
    stale = second.load(row.id)  # both runners saw the row at "verified"

    first._promote(stale)
    second._promote(stale)

    assert [k for k, _, _ in events(ctx)].count("rotation.promoted") == 1
    assert first.drive(row.id).status == "rotated"
    assert second.drive(row.id).status == "rotated"
    assert published == [(["main"], "promotion")]


def test_rotate_project_when_logging_at_debug_never_logs_key_strings(ctx, emu, deps, caplog, clock):
    import logging

    caplog.set_level(logging.DEBUG)
    service.rotate_project(ctx, "alpha-proj", deps=deps)
    clock.advance(timedelta(days=16))
    emu.inject_fault("generativelanguage", status=400, count=1)
    with pytest.raises(RotationError) as err:
        service.rotate_project(ctx, "alpha-proj", deps=deps)

    with ctx.store.read() as s:
        secrets = [k.secret for k in q.list_keys(s, "alpha-proj")]
        journal = " ".join(e.message for e in s.scalars(select(Event)))
    assert len(secrets) == 2
    for secret in secrets:
        assert secret not in caplog.text and secret not in journal and secret not in str(err.value)


def test_replace_reported_when_follower_got_the_report_leader_replaces_within_a_pass(ctx, emu, deps):
    from keyward import leadership

    first = service.rotate_project(ctx, "alpha-proj", deps=deps)
    reject_at_google(ctx, emu, first.new_key_id)

    class Follower:
        is_leader = False

    leadership.attach(ctx.store, Follower())
    try:
        assert service.replace_invalid(ctx, first.new_key_id, deps=deps).status == "pending"
        assert len(emu.keys("alpha-proj")) == 0, "a follower makes no key"
    finally:
        leadership.attach(ctx.store, None)

    [result] = service.replace_reported(ctx, deps=deps)  # the leader's publishing timer

    assert result.status == "rotated" and result.reason == "invalid"
    assert service.replace_reported(ctx, deps=deps) == []
