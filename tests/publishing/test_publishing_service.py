from __future__ import annotations

import json
import os
import sys
from datetime import timedelta

import pytest
from publishing_helpers import config_text, make_world

from keyward.client import published_state_path, read_published_state
from keyward.errors import NotFound, PublishError
from keyward.publishing.service import cleanup, publish_pools
from keyward.publishing.sinkset import sinks_for
from keyward.sinks import NullSink
from keyward.sinks.file import read_published_file


def _null(world, pool="main") -> NullSink:
    return next(s for _label, s in sinks_for(world.ctx, pool).sinks if isinstance(s, NullSink))


def _key_file(world):
    return read_published_file(world.tmp_path / "keys" / "main.key")


def test_publish_when_first_run_picks_least_loaded_and_writes_every_sink(world):
    a_id, a_secret = world.add_key("alpha-1")
    b_id, b_secret = world.add_key("beta-2")
    world.use("alpha-1", 5)
    [result] = publish_pools(world.ctx, trigger="timer")
    assert (result.key_id, result.project_id, result.switched) == (b_id, "beta-2", True)
    assert _key_file(world) == b_secret and _null(world).read() == b_secret
    pool = world.pool()
    assert (pool.current_key_id, pool.published_key_id) == (b_id, b_id)
    assert pool.current_since == world.clock.now and "least loaded" in pool.current_reason
    [event] = world.events("selection.switched")
    assert event.key_id == b_id and event.level == "info" and "timer" in event.message


def test_publish_when_usage_within_margin_keeps_current_key(world):
    a_id, _ = world.add_key("alpha-1")
    world.add_key("beta-2")
    [first] = publish_pools(world.ctx, trigger="timer")
    assert first.key_id == a_id  # equal loads: the lower project id wins
    world.clock.advance(minutes=5)
    world.use("alpha-1", 1)  # 10% vs 0%: exactly at the 0.1 margin
    [result] = publish_pools(world.ctx, trigger="timer")
    assert result.key_id == a_id and not result.switched and "within margin" in result.reason
    assert len(world.events("selection.switched")) == 1


def test_publish_when_usage_beyond_margin_switches(world):
    world.add_key("alpha-1")
    b_id, b_secret = world.add_key("beta-2")
    publish_pools(world.ctx, trigger="timer")
    world.clock.advance(minutes=5)
    world.use("alpha-1", 2)  # 20% vs 0%
    [result] = publish_pools(world.ctx, trigger="quota")
    assert result.key_id == b_id and result.switched and "exceeds" in result.reason
    assert _key_file(world) == b_secret
    assert world.pool().current_since == world.clock.now


def test_publish_when_current_project_exhausted_switches(world):
    a_id, _ = world.add_key("alpha-1")
    b_id, b_secret = world.add_key("beta-2")
    world.use("beta-2", 5)
    publish_pools(world.ctx, trigger="timer")
    world.exhaust("alpha-1", world.clock.now + timedelta(minutes=1))
    [result] = publish_pools(world.ctx, trigger="quota")
    assert result.key_id == b_id and "exhausted" in result.reason and not result.all_exhausted
    assert _key_file(world) == b_secret


def test_publish_when_all_exhausted_keeps_least_bad_and_says_so(world, caplog):
    world.add_key("alpha-1")
    b_id, b_secret = world.add_key("beta-2")
    world.exhaust("alpha-1", world.clock.now + timedelta(hours=2))
    world.exhaust("beta-2", world.clock.now + timedelta(minutes=1))
    with caplog.at_level("WARNING"):
        [result] = publish_pools(world.ctx, trigger="quota")
    assert result.key_id == b_id and result.all_exhausted and "frees up first" in result.reason
    assert _key_file(world) == b_secret
    state = read_published_state(world.ctx.config.runtime_dir, "main")
    assert state["all_exhausted"] is True and state["key_id"] == b_id
    assert world.pool().all_exhausted
    assert world.events("selection.switched")[-1].level == "warning"
    assert "exhausted" in caplog.text
    world.clock.advance(minutes=2)  # beta frees up
    [result] = publish_pools(world.ctx, trigger="timer")
    assert not result.all_exhausted and not world.pool().all_exhausted
    assert read_published_state(world.ctx.config.runtime_dir, "main")["all_exhausted"] is False
    assert world.events("selection.recovered")


def test_publish_when_nothing_changed_writes_sinks_once(world):
    world.add_key("alpha-1")
    publish_pools(world.ctx, trigger="timer")
    mtime = os.stat(world.tmp_path / "keys" / "main.key").st_mtime_ns
    for _ in range(3):
        world.clock.advance(seconds=15)
        [result] = publish_pools(world.ctx, trigger="timer")
        assert result.published_to == [] and result.ok
    assert _null(world).publish_count == 1
    assert os.stat(world.tmp_path / "keys" / "main.key").st_mtime_ns == mtime
    assert len(world.events("key.published")) == 1


def test_publish_when_a_sink_lost_the_key_rewrites_only_that_sink(world):
    _, secret = world.add_key("alpha-1")
    publish_pools(world.ctx, trigger="timer")
    (world.tmp_path / "keys" / "main.key").unlink()
    [result] = publish_pools(world.ctx, trigger="timer")
    assert len(result.published_to) == 1 and "file" in result.published_to[0]
    assert _key_file(world) == secret and _null(world).publish_count == 1


def test_publish_when_file_sink_fails_other_sinks_still_publish_and_next_call_retries(world):
    a_id, a_secret = world.add_key("alpha-1")
    blocker = world.tmp_path / "keys"
    blocker.write_text("not a directory")  # the sink cannot create its directory (even as root)
    with pytest.raises(PublishError) as caught:
        publish_pools(world.ctx, trigger="timer")
    [result] = caught.value.results
    assert not result.ok and any("file" in label for label in result.failures)
    assert _null(world).read() == a_secret
    assert world.pool().published_key_id is None  # unconfirmed: the next call retries
    assert read_published_state(world.ctx.config.runtime_dir, "main")["published"] is False
    assert len(world.events("publish.failed")) == 1
    assert a_secret not in str(caught.value)
    with pytest.raises(PublishError):
        publish_pools(world.ctx, trigger="timer")
    assert len(world.events("publish.failed")) == 1  # journaled when it starts failing only
    assert _null(world).publish_count == 1
    blocker.unlink()
    [result] = publish_pools(world.ctx, trigger="timer")
    assert result.ok and _key_file(world) == a_secret
    assert world.pool().published_key_id == a_id
    assert world.events("publish.recovered") and len(world.events("key.published")) == 1


def test_publish_when_simulated_sink_failure_file_sink_still_written(world):
    _, secret = world.add_key("alpha-1")
    _null(world).fail_next("disk on fire")
    with pytest.raises(PublishError, match="disk on fire"):
        publish_pools(world.ctx, trigger="timer")
    assert _key_file(world) == secret
    [result] = publish_pools(world.ctx, trigger="timer")
    assert result.ok and _null(world).read() == secret


def test_publish_when_key_changes_runs_hook_once_with_pool_and_key_id(tmp_path):
    out = tmp_path / "hook.log"
    hook = (f'post_publish = ["{sys.executable}", "-c", '
            f'"import os; open(\'{out}\', \'a\').write(os.environ[\'KEYWARD_POOL\'] + \' \' + '
            f'os.environ[\'KEYWARD_KEY_ID\'] + \'\\\\n\')"]')
    world = make_world(tmp_path, config_text(tmp_path, extra=hook))
    try:
        a_id, a_secret = world.add_key("alpha-1")
        [result] = publish_pools(world.ctx, trigger="timer")
        assert result.hook_ok is True
        world.clock.advance(seconds=15)
        [result] = publish_pools(world.ctx, trigger="timer")
        assert result.hook_ok is None
        assert out.read_text() == f"main {a_id}\n"
        assert a_secret not in out.read_text()
    finally:
        world.ctx.close()


def test_publish_writes_state_file_without_the_secret(world):
    a_id, a_secret = world.add_key("alpha-1")
    publish_pools(world.ctx, trigger="timer")
    path = published_state_path(world.ctx.config.runtime_dir, "main")
    text = path.read_text()
    state = json.loads(text)
    assert a_secret not in text
    assert state["pool"] == "main" and state["key_id"] == a_id and state["project_id"] == "alpha-1"
    assert state["masked"] == f"AQ.…{a_secret[-4:]}" and state["all_exhausted"] is False
    assert state["published"] is True and state["published_at"].startswith("2026-03-10T18:00:30")
    assert state["reason"]
    assert oct(path.stat().st_mode & 0o777) == "0o644"


def test_publish_when_pool_has_no_key_keeps_last_and_journals_error_once(world):
    a_id, a_secret = world.add_key("alpha-1")
    publish_pools(world.ctx, trigger="timer")
    with world.ctx.store.write() as s:
        from keyward.storage import store as q

        q.get_key(s, a_id).state = "invalid"
    for _ in range(2):
        [result] = publish_pools(world.ctx, trigger="invalid-key")
        assert result.key_id is None and "keeping" in result.reason
    assert _key_file(world) == a_secret  # a stale key is better than none
    [event] = world.events("selection.no_key")
    assert event.level == "error"
    assert world.pool().current_key_id == a_id


def test_publish_when_invalid_key_was_current_moves_to_the_other_project(world):
    a_id, _ = world.add_key("alpha-1")
    b_id, b_secret = world.add_key("beta-2")
    publish_pools(world.ctx, trigger="timer")
    with world.ctx.store.write() as s:
        from keyward.storage import store as q

        q.get_key(s, a_id).state = "invalid"
    [result] = publish_pools(world.ctx, trigger="invalid-key")
    assert result.key_id == b_id and f"current key {a_id} is not usable" in result.reason
    assert _key_file(world) == b_secret


def test_publish_when_pool_unknown_raises_not_found(world):
    with pytest.raises(NotFound):
        publish_pools(world.ctx, ["nope"], trigger="timer")


def test_selection_when_repeated_is_deterministic(tmp_path):
    chosen = set()
    for run in range(2):
        world = make_world(tmp_path / str(run), projects={"gamma-3": 10, "alpha-1": 10, "beta-2": 10})
        for project in ("gamma-3", "alpha-1", "beta-2"):
            world.add_key(project)
        [result] = publish_pools(world.ctx, trigger="timer")
        chosen.add(result.project_id)
        world.ctx.close()
    assert chosen == {"alpha-1"}


def test_cleanup_removes_stale_temp_files_of_file_sinks_and_state(world):
    keys = world.tmp_path / "keys"
    keys.mkdir()
    (keys / ".keyward-tmp-main.key-abc").write_text("x")
    run = world.ctx.config.runtime_dir
    run.mkdir(parents=True, exist_ok=True)
    (run / ".keyward-state-xyz").write_text("{}")
    (keys / "other").write_text("keep")
    assert cleanup(world.ctx) == 2
    assert sorted(p.name for p in keys.iterdir()) == ["other"]


def test_publish_when_on_either_database_switches_on_exhaustion_and_keeps_on_repeat(tmp_path, any_db_url):
    world = make_world(tmp_path, db_url=any_db_url)
    try:
        a_id, _ = world.add_key("alpha-1")
        b_id, b_secret = world.add_key("beta-2")
        assert publish_pools(world.ctx, trigger="timer")[0].key_id == a_id
        world.exhaust("alpha-1", world.clock.now + timedelta(minutes=1))
        world.use("beta-2", 4)
        [result] = publish_pools(world.ctx, trigger="quota")
        assert result.key_id == b_id and result.switched and _key_file(world) == b_secret
        [again] = publish_pools(world.ctx, trigger="timer")
        assert again.key_id == b_id and not again.switched and again.published_to == []
    finally:
        world.ctx.close()
