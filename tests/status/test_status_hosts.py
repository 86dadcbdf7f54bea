"""Status shows the daemons sharing one database: host, pid, version, role, heartbeat, lease."""

from __future__ import annotations

import os
import socket
import textwrap
from datetime import datetime, timedelta, timezone

from sqlalchemy import update

from keyward import leadership
from keyward.cli.status_screen import render
from keyward.config import load_config
from keyward.context import Context
from keyward.status import build_status
from keyward.storage.models import Lease

TTL = timedelta(seconds=30)


def make(tmp_path, url):
    path = tmp_path / "keyward.toml"
    path.write_text(textwrap.dedent(f"""
        database = "{url}"
        state_dir = "{tmp_path / 'state'}"
        runtime_dir = "{tmp_path / 'run'}"
        [pools.main]
        model = "gemini-2.5-flash"
        sinks = [{{ type = "null" }}]
    """), encoding="utf-8")
    return Context(load_config(path, env={}))


def test_status_when_two_daemons_share_postgresql_shows_leader_and_follower(tmp_path, pg_url):
    first, second = make(tmp_path, pg_url), make(tmp_path, pg_url)
    a = leadership.Leadership(lambda: first, ttl=TTL)
    b = leadership.Leadership(lambda: second, ttl=TTL)
    a.beat(), b.beat()
    try:
        status = build_status(first)
        assert [(h["instance_id"], h["role"]) for h in status["hosts"]] == [
            (a.instance_id, "leader"), (b.instance_id, "follower")]
        leader = status["hosts"][0]
        assert leader["host"] == socket.gethostname() and leader["pid"] == os.getpid()
        assert leader["lease_expires_at"] and status["hosts"][1]["lease_expires_at"] is None
        assert leader["heartbeat_age_s"] >= 0 and leader["version"]
        assert status["lease"]["held"] and status["lease"]["holder"] == a.instance_id
        assert not any(w["code"] == "no_leader" for w in status["warnings"])
        screen = render(status, datetime.now(timezone.utc))
        assert "HOSTS" in screen and "leader" in screen and "follower" in screen
    finally:
        b.stop(), a.stop()
        first.close(), second.close()


def test_status_when_leader_lease_expired_warns_no_leader(tmp_path, sqlite_url):
    ctx = make(tmp_path, sqlite_url)
    member = leadership.Leadership(lambda: ctx, ttl=TTL)
    member.beat()
    with ctx.store.write() as s:
        s.execute(update(Lease).values(expires_at=datetime.now(timezone.utc) - timedelta(seconds=1)))
    try:
        status = build_status(ctx)
        assert status["lease"]["held"] is False
        assert [h["role"] for h in status["hosts"]] == ["follower"]
        [warning] = [w for w in status["warnings"] if w["code"] == "no_leader"]
        assert warning["level"] == "error" and "leader lease" in warning["message"]
    finally:
        member.stop()
        ctx.close()


def test_status_when_reading_members_names_the_rows_leadership_writes():
    # status reads the instance rows and the leader lease without importing keyward.leadership
    from keyward import leadership, status

    assert status.INSTANCE_PREFIX == leadership.INSTANCE_PREFIX
    assert status.LEADER_LEASE == leadership.LEADER
