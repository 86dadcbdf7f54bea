"""One rotator at a time: the leader and rotator leases, their epochs, and fenced writes, on SQLite
and on PostgreSQL (several contexts on one database stand for several processes or hosts)."""

from __future__ import annotations

import json
import os
import socket
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as hst
from sqlalchemy import select, update

from keyward import leadership
from keyward.errors import AlreadyRunning, LeaseLost
from keyward.rotation import service
from keyward.storage.models import Event, Lease, Meta, Rotation

TTL = timedelta(seconds=30)


def expire(ctx, name):
    with ctx.store.write() as s:
        s.execute(update(Lease).where(Lease.name == name)
                  .values(expires_at=datetime.now(timezone.utc) - timedelta(seconds=5)))


def test_try_acquire_when_held_refuses_others_and_takeover_after_expiry_bumps_epoch(make_ctx, emu, any_db_url):
    ctx = make_ctx(database_url=any_db_url)
    with ctx.store.write() as s:
        assert leadership.try_acquire(s, "leader", "a", TTL) == 1
    with ctx.store.write() as s:
        assert leadership.try_acquire(s, "leader", "b", TTL) is None
        assert leadership.try_acquire(s, "leader", "a", TTL) == 1  # renewal keeps the epoch
    expire(ctx, "leader")
    with ctx.store.write() as s:
        assert leadership.try_acquire(s, "leader", "b", TTL) == 2


def test_fenced_write_when_lease_taken_over_raises_lease_lost(make_ctx, emu, any_db_url):
    ctx = make_ctx(database_url=any_db_url)
    with ctx.store.write() as s:
        epoch = leadership.try_acquire(s, "leader", "old", TTL)
    stale = leadership.Fence("leader", "old", epoch, TTL)
    with ctx.store.write() as s:
        stale.check(s)  # still ours
    expire(ctx, "leader")
    with ctx.store.write() as s:
        leadership.try_acquire(s, "leader", "new", TTL)
    with pytest.raises(LeaseLost, match="leader lease"):
        with ctx.store.write() as s:
            stale.check(s)


def test_rotation_when_leader_fence_is_stale_cannot_plan_or_promote(make_ctx, emu, deps, any_db_url):
    ctx = make_ctx(database_url=any_db_url)
    with ctx.store.write() as s:
        epoch = leadership.try_acquire(s, "leader", "paused-leader", TTL)
    leadership.set_leader_fence(ctx.store, leadership.Fence("leader", "paused-leader", epoch, TTL))
    expire(ctx, "leader")
    with ctx.store.write() as s:
        leadership.try_acquire(s, "leader", "new-leader", TTL)

    with pytest.raises(LeaseLost):
        service.rotate_project(ctx, "alpha-proj", deps=deps)

    with ctx.store.read() as s:
        assert s.scalars(select(Rotation)).all() == []
        assert not any(e.kind == "rotation.promoted" for e in s.scalars(select(Event)))
    assert emu.keys("alpha-proj") == []


def test_rotation_when_fence_lost_midway_leaves_row_for_new_leader(make_ctx, emu, deps, any_db_url):
    ctx = make_ctx(database_url=any_db_url)
    other = make_ctx(database_url=any_db_url)
    with leadership.rotating(ctx, wait=0, kind="command", ttl=TTL):
        service._plan(ctx, _pk(ctx), "alpha-proj", "forced", None)
        expire(ctx, "rotator")
        with other.store.write() as s:
            leadership.try_acquire(s, "rotator", "thief", TTL)
        with pytest.raises(LeaseLost):
            service.rotate_project(ctx, "alpha-proj", deps=deps)
    with ctx.store.read() as s:
        [row] = s.scalars(select(Rotation)).all()
        assert row.finished_at is None and row.step in ("planned", "creating")
    expire(other, "rotator")
    with leadership.rotating(other, wait=0, kind="command"):
        assert service.rotate_project(other, "alpha-proj", deps=deps).status == "rotated"
    assert len(emu.keys("alpha-proj")) == 1


def _pk(ctx):
    from keyward.storage import store as q

    with ctx.store.read() as s:
        return q.get_project(s, "alpha-proj").id


def test_rotating_when_held_by_another_raises_naming_holder_host_and_pid(make_ctx, emu, any_db_url):
    ctx = make_ctx(database_url=any_db_url)
    other = make_ctx(database_url=any_db_url)
    with leadership.rotating(ctx, wait=0, kind="command", instance_id="abc123abc123"):
        with pytest.raises(AlreadyRunning) as caught:
            with leadership.rotating(other, wait=0.3, kind="command"):
                pass
    message = str(caught.value)
    assert "abc123abc123" in message and socket.gethostname() in message
    assert f"pid {os.getpid()}" in message and "waited 0.3 s" in message
    with leadership.rotating(other, wait=0, kind="command"):
        pass  # released on exit


def test_leadership_when_leader_stops_follower_takes_over_with_higher_epoch(make_ctx, emu, pg_url):
    first, second = make_ctx(database_url=pg_url), make_ctx(database_url=pg_url)
    a = leadership.Leadership(lambda: first, ttl=TTL)
    b = leadership.Leadership(lambda: second, ttl=TTL)
    started = []
    b.on_lead = lambda: started.append(b.epoch)
    a.beat(), b.beat()
    assert (a.is_leader, b.is_leader) == (True, False) and started == []
    epoch = a.epoch
    a.stop()
    b.beat()
    assert b.is_leader and b.epoch == epoch + 1
    assert started == [epoch + 1], "the new leader starts the leader's jobs at once"
    b.beat()
    assert started == [epoch + 1]
    with second.store.read() as s:
        roles = {i["id"]: i["role"] for i in leadership.instances(s)}
    assert roles == {a.instance_id: "stopped", b.instance_id: "leader"}
    b.stop()


def test_leadership_when_sqlite_used_by_daemon_of_other_host_refuses_naming_postgresql(make_ctx, emu):
    ctx = make_ctx()
    now = datetime.now(timezone.utc)
    info = {"id": "feedfeedfeed", "kind": "daemon", "host": "other-host.example", "pid": 4242,
            "version": "x", "started_at": now.isoformat(), "beat_at": now.isoformat(),
            "role": "leader", "stopped_at": None}
    with ctx.store.write() as s:
        s.add(Meta(name="instance.feedfeedfeed", value=json.dumps(info), updated_at=now))

    with pytest.raises(AlreadyRunning) as caught:
        leadership.Leadership(lambda: ctx, ttl=TTL).start()

    assert "other-host.example" in str(caught.value) and "PostgreSQL" in str(caught.value)


def test_leadership_when_other_daemon_on_postgresql_starts_as_follower(make_ctx, emu, pg_url):
    first, second = make_ctx(database_url=pg_url), make_ctx(database_url=pg_url)
    a = leadership.Leadership(lambda: first, ttl=TTL).start()
    b = leadership.Leadership(lambda: second, ttl=TTL).start()
    try:
        assert a.role == "leader" and b.role == "follower"
    finally:
        b.stop(), a.stop()


_OPS = hst.lists(hst.tuples(hst.sampled_from("abc"), hst.sampled_from(["acquire", "expire", "release"])),
                max_size=25)


@settings(max_examples=60, deadline=None)
@given(ops=_OPS)
def test_lease_rules_when_holders_acquire_expire_and_release_hold_invariants(ops):
    """A model check: only a free, expired or own lease is granted; the epoch grows exactly when the
    holder changes; every fence but the current holder's is refused."""
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    engine = create_engine("sqlite://")
    Lease.__table__.create(engine)
    holder, epoch, expired, seen = None, 0, True, []
    with Session(engine) as s:
        for who, op in ops:
            if op == "expire":
                s.execute(update(Lease).values(expires_at=datetime.now(timezone.utc) - timedelta(seconds=5)))
                expired = True
            elif op == "release":
                leadership.release(s, "leader", who)
                expired = expired or who == holder
            else:
                got = leadership.try_acquire(s, "leader", who, TTL)
                if holder is not None and who != holder and not expired:
                    assert got is None
                    continue
                epoch += 1 if who != holder else 0
                holder, expired = who, False
                assert got == epoch
                if (who, got) not in seen:
                    seen.append((who, got))
            s.flush()
            for fence_holder, fence_epoch in seen:
                current = (fence_holder, fence_epoch) == (holder, epoch) and not expired
                try:
                    with s.begin_nested():
                        leadership.Fence("leader", fence_holder, fence_epoch, TTL).check(s)
                    assert current, f"stale fence {(fence_holder, fence_epoch)} passed"
                except LeaseLost:
                    assert not current, f"current fence {(fence_holder, fence_epoch)} refused"
    engine.dispose()
