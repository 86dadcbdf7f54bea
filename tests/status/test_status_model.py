from __future__ import annotations

import json
from datetime import timedelta

from keyward.cli.status import render
from keyward.publishing.service import publish_pools
from keyward.status import build_status
from keyward.storage import store as q
from support.fakes import fake_standard_key

POOL_FIELDS = {"name", "model", "margin", "current", "all_exhausted", "published_key_id", "published_at",
               "sinks", "projects", "cost"}
PROJECT_FIELDS = {"project_id", "pool", "model", "managed", "usage", "limit_source", "load", "no_quota",
                  "pacific_day", "rpd_reset_at", "exhausted", "exhausted_until", "exhausted_scope",
                  "rotation", "keys", "cost"}
KEY_FIELDS = {"key_id", "kind", "state", "origin", "masked", "current", "created_at", "age_s",
              "rotate_after", "grace_until", "invalid_reason"}
DAEMON_FIELDS = {"running", "stale", "pid", "host", "version", "started_at", "heartbeat_at", "heartbeat_age_s", "stopped_at"}


def _beat(world, age: timedelta) -> None:
    value = json.dumps({"pid": 4242, "host": "box", "started_at": "2026-03-10T17:00:00+00:00",
                        "version": "0.1.0"})
    with world.ctx.store.write() as s:
        q.set_meta(s, "heartbeat", value, now=world.clock.now - age)


def _codes(status) -> list[str]:
    return [w["code"] for w in status["warnings"]]


def test_status_json_when_built_has_the_documented_schema(world):
    a_id, _ = world.add_key("alpha-1")
    world.use("alpha-1", 3, tokens=100)
    publish_pools(world.ctx, trigger="timer")
    status = build_status(world.ctx)
    assert status["schema_version"] == 1
    assert set(status) == {"schema_version", "generated_at", "daemon", "pools", "projects", "warnings", "secrets",
                           "recent_errors", "hosts", "lease"}
    assert set(status["daemon"]) == DAEMON_FIELDS
    [pool] = status["pools"]
    assert set(pool) == POOL_FIELDS
    assert set(pool["current"]) == {"key_id", "masked", "project_id", "reason", "since"}
    assert pool["current"]["key_id"] == a_id and pool["current"]["project_id"] == "alpha-1"
    assert pool["projects"] == ["alpha-1", "beta-2"]
    alpha, beta = status["projects"]
    assert set(alpha) == PROJECT_FIELDS and set(alpha["keys"][0]) == KEY_FIELDS
    assert alpha["usage"]["rpm"] == {"used": 3, "limit": 10}
    assert alpha["usage"]["rpd"] == {"used": 3, "limit": 1000}
    assert alpha["usage"]["tpm"] == {"used": 100, "limit": None}
    assert alpha["load"] == 0.3 and alpha["limit_source"] == "config"
    assert alpha["pacific_day"] == "2026-03-10"
    assert alpha["rpd_reset_at"] == "2026-03-11T07:00:00+00:00"  # midnight PDT (DST began 2026-03-08)
    assert alpha["keys"][0]["current"] is True and beta["keys"] == []
    json.dumps(status, allow_nan=False)  # strict JSON: no NaN/Infinity


def test_status_when_keys_added_never_shows_a_secret(world):
    secrets_ = [world.add_key("alpha-1")[1], world.add_key("beta-2", fake_standard_key())[1]]
    publish_pools(world.ctx, trigger="timer")
    status = build_status(world.ctx)
    text = json.dumps(status) + render(status, world.clock.now) + render(status, world.clock.now, color=True)
    for secret in secrets_:
        assert secret not in text
        assert secret[-4:] in text  # the mask is there
    assert "AQ.…" in render(status, world.clock.now)


def test_render_when_usage_recorded_shows_bars_and_current_key(world):
    a_id, a_secret = world.add_key("alpha-1")
    world.use("alpha-1", 5)
    publish_pools(world.ctx, trigger="timer")
    screen = render(build_status(world.ctx), world.clock.now)
    assert "RPM [#####.....] 5/10" in screen
    assert "RPD [..........] 5/1000" in screen
    assert "TPM 0 (no limit known)" in screen
    assert "POOL main" in screen and f"current: {a_id} AQ.…{a_secret[-4:]} of alpha-1" in screen
    assert "* alpha-1" in screen and "load 50%" in screen
    assert screen.index("KEYS") < screen.index("WARNINGS")  # warnings come last


def test_status_when_daemon_heartbeat_fresh_reports_running(world):
    _beat(world, timedelta(seconds=10))
    status = build_status(world.ctx)
    assert status["daemon"]["running"] is True and status["daemon"]["pid"] == 4242
    assert "daemon_stale" not in _codes(status) and "daemon_not_running" not in _codes(status)
    assert "daemon: running (pid 4242 on box" in render(status, world.clock.now)


def test_status_when_heartbeat_older_than_three_intervals_warns_stale(world):
    _beat(world, timedelta(seconds=46))  # heartbeat 15s: stale after 45s
    status = build_status(world.ctx)
    assert status["daemon"]["stale"] is True and status["daemon"]["running"] is False
    assert "daemon_stale" in _codes(status)
    screen = render(status, world.clock.now)
    assert "NOT RESPONDING" in screen and "heartbeat is 46s old" in screen


def test_status_when_daemon_stopped_cleanly_says_so_not_stale(world):
    value = json.dumps({"pid": 4242, "host": "box", "started_at": "2026-03-10T17:00:00+00:00",
                        "version": "0.1.0", "stopped_at": "2026-03-10T18:00:00+00:00"})
    with world.ctx.store.write() as s:
        q.set_meta(s, "heartbeat", value, now=world.clock.now - timedelta(hours=1))
    status = build_status(world.ctx)
    assert status["daemon"]["stale"] is False and status["daemon"]["running"] is False
    assert "daemon_not_running" in _codes(status) and "daemon_stale" not in _codes(status)
    assert "stopped cleanly at 2026-03-10T18:00:00+00:00" in render(status, world.clock.now)


def test_status_when_no_heartbeat_warns_daemon_not_running(world):
    status = build_status(world.ctx)
    assert "daemon_not_running" in _codes(status)
    assert "daemon: NOT RUNNING" in render(status, world.clock.now)


def test_status_when_key_past_rotate_after_warns_overdue(world):
    a_id, _ = world.add_key("alpha-1")
    world.clock.advance(days=16)  # max_age 15d by default
    status = build_status(world.ctx)
    [w] = [w for w in status["warnings"] if w["code"] == "rotation_overdue"]
    assert w["key_id"] == a_id and w["project_id"] == "alpha-1"
    assert f"key {a_id} of alpha-1 is past its rotation time" in render(status, world.clock.now)


def test_status_when_standard_key_warns_gemini_rejects_it(world):
    b_id, _ = world.add_key("beta-2", fake_standard_key())
    status = build_status(world.ctx)
    [w] = [w for w in status["warnings"] if w["code"] == "standard_key"]
    assert w["key_id"] == b_id
    assert "September 2026" in render(status, world.clock.now)


def test_status_when_all_exhausted_warns_loudly(world):
    world.add_key("alpha-1")
    world.exhaust("alpha-1", world.clock.now + timedelta(hours=1), scope="day")
    publish_pools(world.ctx, trigger="quota")
    status = build_status(world.ctx)
    assert status["pools"][0]["all_exhausted"] is True and "all_exhausted" in _codes(status)
    alpha = status["projects"][0]
    assert alpha["exhausted"] is True and alpha["exhausted_scope"] == "day"
    screen = render(status, world.clock.now)
    assert "ALL PROJECTS EXHAUSTED" in screen and "exhausted until 19:00:30 UTC (day)" in screen


def test_status_when_key_invalid_and_errors_journaled_warns_both(world):
    a_id, _ = world.add_key("alpha-1")
    with world.ctx.store.write() as s:
        key = q.get_key(s, a_id)
        key.state, key.invalid_reason = "invalid", "API_KEY_INVALID"
        q.journal(s, "rotation.failed", "creating a key failed: permission denied", level="error",
                  project="alpha-1", now=world.clock.now - timedelta(hours=1))
        q.journal(s, "rotation.failed", "an old failure", level="error", project="alpha-1",
                  now=world.clock.now - timedelta(hours=30))
        q.get_project(s, "alpha-1").rotation_failures = 2
    status = build_status(world.ctx)
    codes = _codes(status)
    assert {"invalid_key", "recent_errors", "rotation_failing", "no_key"} <= set(codes)
    assert [e["message"] for e in status["recent_errors"]] == ["creating a key failed: permission denied"]
    assert status["projects"][0]["keys"][0]["invalid_reason"] == "API_KEY_INVALID"
    screen = render(status, world.clock.now)
    assert "rejected by Gemini: API_KEY_INVALID" in screen and "1 error(s) in the journal" in screen


def test_status_when_limit_is_zero_reports_no_quota_as_strict_json(tmp_path):
    from publishing_helpers import MODEL, make_world

    world = make_world(tmp_path, projects={"alpha-1": 10})
    try:
        world.add_key("alpha-1")
        with world.ctx.store.write() as s:  # Google reports 0 when a model is not offered
            q.set_limit(s, q.get_project(s, "alpha-1"), MODEL, rpm=0, tpm=None, rpd=None, source="cli")
        status = build_status(world.ctx)
        alpha = status["projects"][0]
        assert alpha["no_quota"] is True and alpha["load"] is None
        json.dumps(status, allow_nan=False)
        assert "no quota for the model" in render(status, world.clock.now)
    finally:
        world.ctx.close()


def test_status_when_on_either_database_reports_usage_and_current_key(tmp_path, any_db_url):
    from publishing_helpers import make_world

    world = make_world(tmp_path, db_url=any_db_url)
    try:
        a_id, secret = world.add_key("alpha-1")
        world.use("alpha-1", 2)
        publish_pools(world.ctx, trigger="timer")
        status = build_status(world.ctx)
        assert status["pools"][0]["current"]["key_id"] == a_id
        assert status["projects"][0]["usage"]["rpm"] == {"used": 2, "limit": 10}
        assert secret not in json.dumps(status)
    finally:
        world.ctx.close()
