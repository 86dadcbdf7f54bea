"""An error the journal has seen undone stops being shown as current; the history keeps it."""

from __future__ import annotations

from datetime import timedelta

import pytest

from keyward.cli.status_screen import render
from keyward.status import build_status
from keyward.storage import store as q


def _journal(world, kind: str, *, level: str = "info", project: str | None = None, pool: str | None = None,
             minutes_ago: int = 0, message: str | None = None) -> None:
    with world.ctx.store.write() as s:
        q.journal(s, kind, message or f"{kind} happened", level=level, project=project, pool=pool,
                  now=world.clock.now - timedelta(minutes=minutes_ago))


def _recent_errors_warning(status):
    return [w for w in status["warnings"] if w["code"] == "recent_errors"]


@pytest.mark.parametrize("error, error_subject, fix, fix_subject", [
    ("rotation.failed", {"project": "alpha-1"}, "rotation.done", {"project": "alpha-1", "pool": "main"}),
    ("key.invalid", {"project": "alpha-1", "pool": "main"}, "key.added", {"project": "alpha-1"}),
    ("selection.no_key", {"pool": "main"}, "key.published", {"pool": "main", "project": "beta-2"}),
    ("publish.failed", {"pool": "main"}, "publish.recovered", {"pool": "main"}),
])
def test_status_when_a_later_event_undid_the_error_shows_it_resolved_and_warns_not(
        world, error, error_subject, fix, fix_subject):
    _journal(world, error, level="error", minutes_ago=30, message="it broke", **error_subject)
    _journal(world, fix, minutes_ago=10, **fix_subject)

    status = build_status(world.ctx)

    assert [(e["kind"], e["resolved"]) for e in status["recent_errors"]] == [(error, True)]
    assert _recent_errors_warning(status) == []
    assert "error(s) in the journal" not in render(status, world.clock.now)


def test_status_when_the_fix_concerns_another_subject_keeps_the_error_current(world):
    _journal(world, "rotation.failed", level="error", project="alpha-1", minutes_ago=30, message="alpha broke")
    _journal(world, "rotation.done", project="beta-2", pool="main", minutes_ago=10)

    status = build_status(world.ctx)

    assert status["recent_errors"][0]["resolved"] is False
    assert "alpha broke" in _recent_errors_warning(status)[0]["message"]


def test_status_when_the_error_came_after_the_fix_keeps_it_current(world):
    _journal(world, "rotation.done", project="alpha-1", pool="main", minutes_ago=30)
    _journal(world, "rotation.failed", level="error", project="alpha-1", minutes_ago=10, message="broke again")

    status = build_status(world.ctx)

    assert status["recent_errors"][0]["resolved"] is False and _recent_errors_warning(status)


def test_status_when_one_of_two_errors_resolved_counts_only_the_other(world):
    _journal(world, "publish.failed", level="error", pool="main", minutes_ago=40, message="sink down")
    _journal(world, "publish.recovered", pool="main", minutes_ago=30)
    _journal(world, "rotation.failed", level="error", project="alpha-1", minutes_ago=20, message="no permission")

    status = build_status(world.ctx)

    (warning,) = _recent_errors_warning(status)
    assert warning["message"].startswith("1 error(s)") and "no permission" in warning["message"]
    assert [e["resolved"] for e in status["recent_errors"]] == [False, True]
