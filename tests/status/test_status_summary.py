"""The status screen past SUMMARY_THRESHOLD projects: counts by state and the most loaded, not everything."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from keyward.cli.status_screen import SUMMARY_THRESHOLD, render

NOW = datetime(2026, 3, 10, 18, 0, tzinfo=timezone.utc)


def _project(n: int, load: float | None, *, exhausted: bool = False, current: bool = False) -> dict:
    until = (NOW + timedelta(hours=1)).isoformat() if exhausted else None
    key = {"key_id": f"kw-{n:05d}", "kind": "auth", "state": "active", "origin": "manual", "masked": "AQ.…abcd",
           "current": current, "created_at": NOW.isoformat(), "age_s": 60,
           "rotate_after": (NOW + timedelta(days=9)).isoformat(), "grace_until": None, "invalid_reason": None}
    return {"project_id": f"proj-{n:05d}", "pool": "main", "model": "m", "managed": False,
            "usage": {w: {"used": 1, "limit": 10} for w in ("rpm", "tpm", "rpd")},
            "limit_source": "config" if load is not None else None, "load": load, "no_quota": False,
            "pacific_day": "2026-03-10", "rpd_reset_at": (NOW + timedelta(hours=14)).isoformat(),
            "exhausted": exhausted, "exhausted_until": until, "exhausted_scope": "day" if exhausted else None,
            "rotation": {"failures": 0, "backoff_until": None}, "keys": [key]}


def _status(count: int) -> dict:
    projects = [_project(n, (n % 100) / 100) for n in range(count)]
    projects[3] = _project(3, 1.0, exhausted=True)
    projects[0] = _project(0, 0.0, current=True)
    projects[5]["keys"][0]["state"] = "invalid"
    pool = {"name": "main", "model": "m", "margin": 0.1, "all_exhausted": False, "published_key_id": "kw-00000",
            "published_at": NOW.isoformat(), "sinks": ["null"], "projects": [p["project_id"] for p in projects],
            "current": {"key_id": "kw-00000", "masked": "AQ.…abcd", "project_id": "proj-00000",
                        "reason": "least loaded", "since": NOW.isoformat()}}
    daemon = {"running": True, "stale": False, "pid": 1, "host": "h", "version": "1", "heartbeat_age_s": 1}
    return {"daemon": daemon, "pools": [pool], "projects": projects, "warnings": []}


def test_render_when_thousands_of_projects_summarises_counts_and_top_loaded():
    text = render(_status(5000), NOW, top=5)
    assert "projects: 5,000 (" in text and "1 exhausted" in text
    assert "proj-00003" in text and "proj-00099" in text  # exhausted first, then the most loaded
    assert "* proj-00000" in text  # the current project is always shown
    assert "proj-00050" not in text and "4,994 more project(s)" in text
    assert "kw-00005" in text and "kw-00007" not in text  # only current and troubled keys are listed
    assert "4,999 active, 1 invalid" in text
    assert len(text.splitlines()) < 60


def test_render_when_few_projects_or_top_none_lists_every_project():
    assert "proj-00009" in render(_status(SUMMARY_THRESHOLD), NOW, top=5)
    text = render(_status(200), NOW, top=None)
    assert all(f"proj-{n:05d}" in text for n in range(200)) and "more project(s)" not in text
