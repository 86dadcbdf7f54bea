"""The rotation state machine's pure decisions, on plain data."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from keyward.rotation import state as st

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("step, found, operation, action", [
    (st.PLANNED, st.AtGoogle(False), None, st.CREATE),
    (st.PLANNED, st.AtGoogle(True), None, st.USE_EXISTING),
    (st.CREATING, st.AtGoogle(True), "operations/x", st.USE_EXISTING),
    (st.CREATING, st.AtGoogle(False), "operations/x", st.WAIT),
    (st.CREATING, st.AtGoogle(False), None, st.CREATE),
    (st.CREATING, st.AtGoogle(True, deleted=True), "operations/x", st.RESTART_CREATE),
])
def test_create_action_when_resuming_uses_key_found_by_id_first(step, found, operation, action):
    assert st.create_action(step, found, operation) == action


def test_create_action_when_past_creation_refuses():
    with pytest.raises(ValueError):
        st.create_action(st.CREATED, st.AtGoogle(False), None)


@pytest.mark.parametrize("verification, action", [
    (None, st.VERIFY), ("ok", st.SKIP_VERIFY), ("quota", st.SKIP_VERIFY),
    ("transient", st.RETRY_LATER), ("invalid_key", st.DISCARD), ("other", st.DISCARD),
    ("unsupported_key_type", st.DISCARD), ("suspended", st.DISCARD),
])
def test_next_action_when_created_follows_verification(verification, action):
    assert st.next_action(st.CREATED, verify_enabled=True, verification=verification) == action


def test_next_action_when_verify_disabled_skips_and_later_steps_chain():
    assert st.next_action(st.CREATED, verify_enabled=False) == st.SKIP_VERIFY
    assert st.next_action(st.VERIFIED, verify_enabled=True) == st.PROMOTE
    assert st.next_action(st.PROMOTED, verify_enabled=True) == st.PUBLISH
    assert st.next_action(st.DONE, verify_enabled=True) == st.NOTHING


def test_may_move_when_step_skipped_or_repeated_is_refused():
    assert st.may_move(st.VERIFIED, st.PROMOTED)
    assert not st.may_move(st.PROMOTED, st.PROMOTED)  # two runners cannot both promote
    assert not st.may_move(st.CREATED, st.PROMOTED)
    assert not st.may_move(st.DONE, st.FAILED)
    assert st.may_move(st.CREATING, st.CREATING)


@pytest.mark.parametrize("active, force, invalid, reason", [
    (None, False, False, st.INITIAL),
    (None, False, True, st.INVALID),
    (st.ActiveKey("k", "standard", NOW + timedelta(days=3)), False, False, st.MIGRATE),
    (st.ActiveKey("k", "auth", NOW - timedelta(seconds=1)), False, False, st.DUE),
    (st.ActiveKey("k", "auth", None), False, False, st.DUE),
    (st.ActiveKey("k", "auth", NOW + timedelta(days=3)), False, False, None),
    (st.ActiveKey("k", "auth", NOW + timedelta(days=3)), True, False, st.FORCED),
])
def test_due_reason_when_key_in_given_shape_says_why(active, force, invalid, reason):
    assert st.due_reason(active, NOW, force=force, invalid_key=invalid) == reason


@pytest.mark.parametrize("draw, days", [(0.0, 7), (1.0, 15), (0.25, 9)])
def test_draw_rotate_after_when_drawn_lies_between_min_and_max_age(draw, days):
    assert st.draw_rotate_after(NOW, timedelta(days=7), timedelta(days=15), lambda: draw) == NOW + timedelta(days=days)


def test_backoff_when_failures_repeat_doubles_up_to_cap():
    base, cap = timedelta(hours=1), timedelta(hours=24)
    waits = [st.backoff(n, base, cap) for n in range(0, 8)]
    assert waits[:6] == [timedelta(0), base, 2 * base, 4 * base, 8 * base, 16 * base]
    assert waits[6] == waits[7] == cap
    assert st.backoff(10_000, base, cap) == cap


def test_in_backoff_when_deadline_reached_is_over():
    assert st.in_backoff(NOW + timedelta(seconds=1), NOW)
    assert not st.in_backoff(NOW, NOW)
    assert not st.in_backoff(None, NOW)


@pytest.mark.parametrize("origin, managed, mode", [
    ("keyward", True, "delete"), ("keyward", False, "manual"), ("manual", True, "manual"),
])
def test_retire_mode_when_keyward_did_not_create_key_or_may_not_touch_it_is_manual(origin, managed, mode):
    assert st.retire_mode(origin, managed) == mode
