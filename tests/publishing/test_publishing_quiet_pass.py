"""The timer pass that changes nothing: no write transaction, no sink read, and still repairs.

`settled` makes every file look older than the settle window (as it is in a daemon whose passes are
seconds apart), so that a sink's change marker is trusted and the skipped reads can be seen.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from datetime import timedelta

import pytest
from publishing_helpers import config_text, make_world

from keyward import atomicfile
from keyward.publishing.service import publish_pools
from keyward.publishing.sinkset import sinks_for
from keyward.sinks import FileSink, NullSink
from keyward.sinks.file import read_published_file
from keyward.usage.loads import LoadBook


@pytest.fixture
def settled(monkeypatch):
    monkeypatch.setattr(atomicfile, "SETTLE_NS", -10**15)
    monkeypatch.setattr(atomicfile, "SETTLE_COARSE_NS", -10**15)


class Counts:
    def __init__(self, monkeypatch, store):
        self.writes = 0
        self.reads: dict[str, int] = {"file": 0, "null": 0}
        real_write = store.write

        @contextmanager
        def counting_write():
            self.writes += 1
            with real_write() as s:
                yield s

        monkeypatch.setattr(store, "write", counting_write)
        for name, cls in (("file", FileSink), ("null", NullSink)):
            monkeypatch.setattr(cls, "read", self._counting(name, cls.read))

    def _counting(self, name, read):
        def counted(sink):
            self.reads[name] += 1
            return read(sink)
        return counted

    def reset(self):
        self.writes = 0
        self.reads = {k: 0 for k in self.reads}


@pytest.fixture
def world(world_both_ways):
    return world_both_ways


def _key_path(world):
    return world.tmp_path / "keys" / "main.key"


def test_timer_pass_when_nothing_changed_writes_nothing_and_reads_no_sink(world, settled, monkeypatch):
    world.add_key("alpha-1")
    world.add_key("beta-2")
    publish_pools(world.ctx, trigger="timer")
    publish_pools(world.ctx, trigger="timer")  # the pass after a publication reads what it wrote
    counts = Counts(monkeypatch, world.ctx.store)
    for _ in range(3):
        world.clock.advance(seconds=15)
        [result] = publish_pools(world.ctx, trigger="timer")
        assert result.ok and result.published_to == []
    assert counts.writes == 0
    assert counts.reads == {"file": 0, "null": 0}


def test_timer_pass_when_sink_marker_is_unknown_reads_it_every_time(world, settled, monkeypatch):
    world.add_key("alpha-1")
    publish_pools(world.ctx, trigger="timer")
    publish_pools(world.ctx, trigger="timer")  # records the reason "kept: ..." once
    monkeypatch.setattr(NullSink, "change_marker", lambda self: None)  # like the keyring sink
    counts = Counts(monkeypatch, world.ctx.store)
    for _ in range(3):
        publish_pools(world.ctx, trigger="timer")
    assert counts.reads["null"] == 3 and counts.reads["file"] == 0
    assert counts.writes == 0


def test_timer_pass_when_file_just_written_reads_it_until_its_times_settle(world, monkeypatch):
    world.add_key("alpha-1")
    publish_pools(world.ctx, trigger="timer")
    monkeypatch.setattr(atomicfile, "SETTLE_NS", 10**15)  # every change is too recent to trust
    counts = Counts(monkeypatch, world.ctx.store)
    publish_pools(world.ctx, trigger="timer")
    publish_pools(world.ctx, trigger="timer")
    assert counts.reads["file"] == 2


def test_timer_pass_when_file_was_seen_long_ago_reads_it_again(world, settled, monkeypatch):
    from keyward.publishing import service

    world.add_key("alpha-1")
    publish_pools(world.ctx, trigger="timer")
    publish_pools(world.ctx, trigger="timer")
    monkeypatch.setattr(service, "VERIFY_SECONDS", 0.0)
    counts = Counts(monkeypatch, world.ctx.store)
    publish_pools(world.ctx, trigger="timer")
    assert counts.reads == {"file": 1, "null": 1}


def test_timer_pass_when_file_deleted_behind_our_back_restores_it(world, settled):
    _, secret = world.add_key("alpha-1")
    publish_pools(world.ctx, trigger="timer")
    publish_pools(world.ctx, trigger="timer")
    _key_path(world).unlink()
    [result] = publish_pools(world.ctx, trigger="timer")
    assert len(result.published_to) == 1 and "file" in result.published_to[0]
    assert read_published_file(_key_path(world)) == secret


def test_timer_pass_when_file_edited_in_place_behind_our_back_restores_it(world, settled):
    _, secret = world.add_key("alpha-1")
    publish_pools(world.ctx, trigger="timer")
    publish_pools(world.ctx, trigger="timer")
    path = _key_path(world)
    before = os.lstat(path)
    fd = os.open(path, os.O_WRONLY)  # same inode, same size: only the times can tell
    try:
        os.write(fd, b"X" * before.st_size)
    finally:
        os.close(fd)
    # An edit made later than the publication, as any edit by a person or a program is.
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000_000))
    [result] = publish_pools(world.ctx, trigger="timer")
    assert "file" in result.published_to[0]
    assert read_published_file(path) == secret


def test_timer_pass_when_state_file_removed_rewrites_it(world, settled):
    from keyward.client import published_state_path, read_published_state

    key_id, _ = world.add_key("alpha-1")
    publish_pools(world.ctx, trigger="timer")
    publish_pools(world.ctx, trigger="timer")
    published_state_path(world.ctx.config.runtime_dir, "main").unlink()
    publish_pools(world.ctx, trigger="timer")
    assert read_published_state(world.ctx.config.runtime_dir, "main")["key_id"] == key_id


def test_switch_after_quiet_passes_journals_it_once_and_publishes_the_chosen_key(world, settled, monkeypatch):
    a_id, _ = world.add_key("alpha-1")
    b_id, b_secret = world.add_key("beta-2")
    for _ in range(3):
        publish_pools(world.ctx, trigger="timer")
    counts = Counts(monkeypatch, world.ctx.store)
    world.exhaust("alpha-1", world.clock.now + timedelta(hours=1))
    if world.ctx.loads is not None:
        with world.ctx.store.read() as s:
            from keyward.storage import store as q

            world.ctx.loads.touch([q.get_project(s, "alpha-1").id])  # what recording a 429 does
    [result] = publish_pools(world.ctx, trigger="exhausted")
    assert result.key_id == b_id and result.switched
    assert read_published_file(_key_path(world)) == b_secret
    assert sinks_for(world.ctx, "main").sinks[1][1].read() == b_secret
    assert counts.writes >= 1
    published = [e.key_id for e in world.events("key.published")]
    assert published == [a_id, b_id]
    assert [e.key_id for e in world.events("selection.switched")][-1] == b_id
    assert world.pool().published_key_id == b_id


def test_hosts_sharing_a_database_each_publish_the_key_another_host_chose(tmp_path, any_db_url, settled):
    """Two daemons on one database, each with its own file: when one switches, the other's quiet
    pass (the row already says the new key, so it writes nothing) still rewrites its own file."""
    one = make_world(tmp_path / "one", db_url=any_db_url)
    two = make_world(tmp_path / "two", config_text(tmp_path / "two"), one.clock, db_url=any_db_url)
    try:
        two.ctx.loads = LoadBook()
        a_id, a_secret = one.add_key("alpha-1")
        b_id, b_secret = one.add_key("beta-2")
        publish_pools(one.ctx, trigger="timer")
        publish_pools(two.ctx, trigger="timer")
        publish_pools(two.ctx, trigger="timer")
        assert read_published_file(_key_path(two)) == a_secret
        one.exhaust("alpha-1", one.clock.now + timedelta(hours=1))
        [switched] = publish_pools(one.ctx, trigger="exhausted")
        assert switched.key_id == b_id and read_published_file(_key_path(one)) == b_secret
        [result] = publish_pools(two.ctx, trigger="timer")
        assert result.key_id == b_id and not result.switched
        assert read_published_file(_key_path(two)) == b_secret
        assert [e.key_id for e in one.events("key.published")] == [a_id, b_id]
    finally:
        two.ctx.close()
        one.ctx.close()
