"""The daemon's kept loads: touched projects recomputed alone, the rest checked against the database,
and selection from them deciding as selection from the database does."""

from __future__ import annotations

from datetime import timedelta

from usage_bodies import RPD_ID, quota_429, violation
from usage_world import MODEL, POOL, make_world

from keyward.publishing.service import publish_pools
from keyward.storage import store as q
from keyward.storage import usage_queries as uq
from keyward.usage import accounting
from keyward.usage.loads import LoadBook

LIMITS = {"rpm": 100, "tpm": 100_000, "rpd": 1000}
PROJECTS = {p: LIMITS for p in ("alpha-one", "beta-two", "gamma-three", "delta-four")}


class Ticks:
    def __init__(self):
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _kept(world, book):
    with world.ctx.store.read() as s:
        kept = book.pool(s, q.get_pool(s, POOL), world.ctx.now())
        return {pid: pl.usage.rpm for pid, pl in kept.loads.items()}, [pid for _, pid in kept.order]


def test_book_when_a_report_touches_a_project_recomputes_only_it_and_reorders(tmp_path, sqlite_url):
    w = make_world(tmp_path, sqlite_url, PROJECTS)
    book = w.ctx.loads = LoadBook(clock=Ticks())
    rpm, order = _kept(w, book)
    assert rpm == dict.fromkeys(PROJECTS, 0) and book.rebuilds == 1
    accounting.record_usage(w.ctx, key_id=w.keys["alpha-one"], requests=40)
    rpm, order = _kept(w, book)
    assert rpm["alpha-one"] == 40 and order[-1] == "alpha-one"
    assert (book.rebuilds, book.updates) == (1, 1)
    w.ctx.close()


def test_book_when_another_process_writes_sees_it_at_the_next_check(tmp_path, sqlite_url):
    w = make_world(tmp_path, sqlite_url, PROJECTS)
    ticks = Ticks()
    book = LoadBook(check_seconds=60, clock=ticks)
    _kept(w, book)
    with w.ctx.store.write() as s:  # as a reporting process without the daemon would
        pk = q.get_project(s, "beta-two").id
        uq.add_local(s, pk, MODEL, w.ctx.now().replace(second=0, microsecond=0),
                     w.ctx.now().date(), (7, 0, 0))
    assert _kept(w, book)[0]["beta-two"] == 0  # nothing touched it in this process
    ticks.t += 60
    assert _kept(w, book)[0]["beta-two"] == 7 and book.rebuilds == 2
    w.ctx.close()


def test_book_when_the_minute_ends_recomputes_projects_with_traffic(tmp_path, sqlite_url):
    w = make_world(tmp_path, sqlite_url, PROJECTS)
    book = w.ctx.loads = LoadBook(clock=Ticks())
    accounting.record_usage(w.ctx, key_id=w.keys["gamma-three"], requests=9)
    assert _kept(w, book)[0]["gamma-three"] == 9
    w.clock.now += timedelta(minutes=3)  # the RPM window has moved past that minute
    assert _kept(w, book)[0]["gamma-three"] == 0 and book.rebuilds == 1
    w.ctx.close()


def test_publish_with_kept_loads_when_current_is_exhausted_switches_like_the_database_path(tmp_path, sqlite_url):
    decided = {}
    for kept in (False, True):
        (tmp_path / str(kept)).mkdir()
        w = make_world(tmp_path / str(kept), sqlite_url.replace(".db", f"-{kept}.db"), PROJECTS)
        if kept:
            w.ctx.loads = LoadBook(clock=Ticks())
        accounting.record_usage(w.ctx, key_id=w.keys["beta-two"], requests=50)
        publish_pools(w.ctx, [POOL], trigger="timer")
        with w.ctx.store.read() as s:
            first = q.get_pool(s, POOL).current_key_id
        accounting.record_error(w.ctx, 429, quota_429(violation(RPD_ID)), key_id=first)
        with w.ctx.store.read() as s:
            pool = q.get_pool(s, POOL)
            decided[kept] = (first, pool.current_key_id, pool.current_reason)
        w.ctx.close()
    assert decided[True] == decided[False]
    assert decided[True][0] != decided[True][1]


def test_book_when_reports_touch_projects_on_either_database_equals_a_full_read(tmp_path, any_db_url):
    w = make_world(tmp_path, any_db_url, PROJECTS)
    try:
        book = w.ctx.loads = LoadBook(clock=Ticks())
        _kept(w, book)
        accounting.record_usage(w.ctx, key_id=w.keys["alpha-one"], requests=40, input_tokens=900)
        accounting.record_error(w.ctx, 429, quota_429(violation(RPD_ID)), key_id=w.keys["beta-two"])
        with w.ctx.store.read() as s:
            pool = q.get_pool(s, POOL)
            kept = book.pool(s, pool, w.ctx.now())
            full = {pl.project_id: pl for pl in accounting.pool_loads(s, pool, w.ctx.now())}
        assert book.rebuilds == 1 and book.updates >= 1  # recomputed alone, not read whole again
        assert kept.loads["alpha-one"].usage.rpm == 40
        assert kept.loads["beta-two"].exhausted_until is not None
        assert kept.loads == full
    finally:
        w.ctx.close()
