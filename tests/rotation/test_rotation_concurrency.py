"""Two runners on one database (threads with their own connections, as two hosts would have):
compare-and-set steps mean one key is created and promoted, on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading

from sqlalchemy import select

from keyward.rotation import service
from keyward.storage import store as q
from keyward.storage.models import Event, Rotation


def test_rotate_project_when_two_runners_race_creates_and_promotes_one_key(make_ctx, emu, deps, any_db_url):
    contexts = [make_ctx(database_url=any_db_url) for _ in range(2)]
    contexts[0].store  # create the schema once before the race
    results, errors = [], []

    def run(ctx):
        try:
            results.append(service.rotate_project(ctx, "alpha-proj", deps=deps))
        except Exception as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(ctx,)) for ctx in contexts]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    assert errors == []
    assert [r.status for r in results] == ["rotated", "rotated"]
    assert results[0].new_key_id == results[1].new_key_id
    assert len(emu.keys("alpha-proj")) == 1
    with contexts[0].store.read() as s:
        assert len(s.scalars(select(Rotation)).all()) == 1
        keys = q.list_keys(s, "alpha-proj")
        assert [k.state for k in keys] == ["active"]
        promoted = [e for e in s.scalars(select(Event)) if e.kind == "rotation.promoted"]
        assert len(promoted) == 1
