"""Event hooks: a command runs once when trouble starts and once when it ends, with the event's
fields in its environment and never a key."""

from __future__ import annotations

import json
import sys
from datetime import timedelta

import pytest
from publishing_helpers import config_text, make_world

from keyward import alerts
from keyward.config import load_config
from keyward.errors import ConfigError
from keyward.publishing.service import publish_pools
from keyward.storage import store as q


def _world(tmp_path, extra: str = ""):
    out = tmp_path / "events.jsonl"
    hook = tmp_path / "hook.py"
    hook.write_text("import json, os, sys\n"
                    f"open({str(out)!r}, 'a').write(json.dumps({{k: v for k, v in os.environ.items() "
                    "if k.startswith('KEYWARD_')}) + '\\n')\n")
    text = config_text(tmp_path) + f'''
[alerts]
command = ["{sys.executable}", "{hook}"]
rotation_failures = 2
{extra}
'''
    return make_world(tmp_path, text), out


def _events(out):
    try:
        return [json.loads(line) for line in out.read_text().splitlines()]
    except FileNotFoundError:
        return []


def test_alerts_when_all_exhausted_fire_once_then_resolve(tmp_path):
    world, out = _world(tmp_path)
    try:
        _, a_secret = world.add_key("alpha-1")
        _, b_secret = world.add_key("beta-2")
        world.exhaust("alpha-1", world.clock.now + timedelta(hours=2))
        world.exhaust("beta-2", world.clock.now + timedelta(minutes=5))
        publish_pools(world.ctx, trigger="quota")
        ran = alerts.check(world.ctx)
        assert [(s, e.event) for s, e in ran] == [("firing", "all_exhausted")]
        [event] = _events(out)
        assert event["KEYWARD_EVENT"] == "all_exhausted" and event["KEYWARD_EVENT_STATE"] == "firing"
        assert event["KEYWARD_POOL"] == "main" and event["KEYWARD_UNTIL"].startswith("2026-03-10T18:05")
        assert a_secret not in out.read_text() and b_secret not in out.read_text()
        assert alerts.check(world.ctx) == []          # still true: not fired again
        world.clock.advance(minutes=6)
        publish_pools(world.ctx, trigger="timer")
        ran = alerts.check(world.ctx)
        assert [(s, e.event) for s, e in ran] == [("resolved", "all_exhausted")]
        assert _events(out)[-1]["KEYWARD_EVENT_STATE"] == "resolved"
    finally:
        world.ctx.close()


def test_alerts_when_rotation_fails_n_times_and_key_invalid_fire_each(tmp_path):
    world, out = _world(tmp_path)
    try:
        key_id, _ = world.add_key("alpha-1")
        with world.ctx.store.write() as s:
            q.get_project(s, "alpha-1").rotation_failures = 1
        assert alerts.check(world.ctx) == []          # below rotation_failures = 2
        with world.ctx.store.write() as s:
            q.get_project(s, "alpha-1").rotation_failures = 2
            key = q.get_key(s, key_id)
            key.state, key.invalid_reason = "invalid", "API_KEY_INVALID"
        ran = {e.event: e for _s, e in alerts.check(world.ctx)}
        assert set(ran) == {"rotation_failing", "key_invalid"}
        events = {e["KEYWARD_EVENT"]: e for e in _events(out)}
        assert events["rotation_failing"]["KEYWARD_FAILURES"] == "2"
        assert events["rotation_failing"]["KEYWARD_PROJECT"] == "alpha-1"
        assert events["key_invalid"]["KEYWARD_KEY_ID"] == key_id
        assert "API_KEY_INVALID" in events["key_invalid"]["KEYWARD_MESSAGE"]
    finally:
        world.ctx.close()


def _exhaust_the_pool(world) -> None:
    """Both projects of pool main out of quota for five minutes, and the pool republished."""
    for project in ("alpha-1", "beta-2"):
        world.add_key(project)
        world.exhaust(project, world.clock.now + timedelta(minutes=5))
    publish_pools(world.ctx, trigger="quota")


def _other_host(world):
    """A second Context on the same database with a state directory of its own: another host."""
    from keyward.context import Context

    env = {**world.ctx.env, "KEYWARD_STATE_DIR": str(world.tmp_path / "other-host"),
           "KEYWARD_DATABASE_URL": world.ctx.config.database_url}
    return Context(load_config(world.tmp_path / "keyward.toml", env=env), clock=world.clock, env=env)


def test_alerts_when_the_leader_changes_the_new_one_neither_repeats_nor_forgets_an_event(tmp_path):
    world, out = _world(tmp_path)
    other = _other_host(world)
    try:
        _exhaust_the_pool(world)
        assert [(s, e.event) for s, e in alerts.check(world.ctx)] == [("firing", "all_exhausted")]
        assert alerts.check(other) == []              # the new leader knows it was announced
        world.clock.advance(minutes=6)
        publish_pools(other, trigger="timer")
        assert [(s, e.event) for s, e in alerts.check(other)] == [("resolved", "all_exhausted")]
        assert alerts.check(world.ctx) == []          # and the old one that it was resolved
        assert [e["KEYWARD_EVENT_STATE"] for e in _events(out)] == ["firing", "resolved"]
    finally:
        other.close()
        world.ctx.close()


def test_alerts_when_upgrading_take_over_what_the_host_file_recorded_then_remove_it(tmp_path):
    world, out = _world(tmp_path)
    try:
        _exhaust_the_pool(world)
        legacy = world.tmp_path / "state" / alerts.STATE_FILE
        legacy.write_text(json.dumps({"all_exhausted:main": {"event": "all_exhausted", "message": "m",
                                                              "pool": "main"},
                                      "key_invalid:gone": {"event": "key_invalid", "message": "old"}}))
        ran = alerts.check(world.ctx)
        assert [(s, e.ident) for s, e in ran] == [("resolved", "key_invalid:gone")]
        assert not legacy.exists()
        assert alerts.check(world.ctx) == []
    finally:
        world.ctx.close()


def test_conditions_when_daemon_stale_or_stopped_cleanly():
    cfg = alerts.AlertsConfig(command=("true",))
    stale = {"daemon": {"stale": True, "running": False, "heartbeat_at": "x", "heartbeat_age_s": 99}}
    stopped = {"daemon": {"stale": False, "running": False, "heartbeat_at": "x", "stopped_at": "y"}}
    assert list(alerts.conditions(stale, cfg)) == ["daemon_stale"]
    assert alerts.conditions(stopped, cfg) == {}
    only = alerts.AlertsConfig(command=("true",), events=("key_invalid",))
    assert alerts.conditions(stale, only) == {}


def test_conditions_when_budget_spent_fire_budget_reached():
    cfg = alerts.AlertsConfig(command=("true",))
    status = {"pools": [{"name": "main", "all_exhausted": False, "projects": [],
                         "cost": {"budget": {"spent": True, "period": "daily", "stop": True}}}]}
    [event] = alerts.conditions(status, cfg).values()
    assert event.event == "budget_reached" and "withdrawn" in event.message


def test_alerts_config_when_bad_reports_every_problem(tmp_path):
    path = tmp_path / "k.toml"
    path.write_text('[alerts]\ncommand = "notify-send"\nevents = ["all_exhausted", "nope"]\nrotation_failures = 0\n')
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    for fragment in ("alerts.command", "nope", "alerts.rotation_failures"):
        assert fragment in str(info.value)


def test_job_table_when_alerts_configured_checks_them_after_the_other_jobs(tmp_path):
    from keyward.jobs import job_table

    world, _out = _world(tmp_path)
    try:
        names = [spec.name for spec in job_table(world.ctx.config)]
    finally:
        world.ctx.close()
    assert names[-1] == "alerts" and "alerts" not in [s.name for s in job_table(load_config(None, env={}))]
