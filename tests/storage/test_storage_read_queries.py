"""The Core read paths (`read_queries`: pool, project and key lists, status) say what the ORM says.

Listing commands and `keyward status` read through Core for speed; everything else goes on reading
through the ORM models. On both databases, one varied world: several pools and models, limits for
the pool's model and for every model ("*"), a zero limit, live, ended and other-model exhaustion,
keys in every state, and usage in and out of the RPM window and on another day.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import pytest

from keyward import inventory
from keyward.config import load_config
from keyward.context import Context
from keyward.quota.windows import minute_floor, pacific_date
from keyward.status import build_status, iso
from keyward.storage import read_queries as rq
from keyward.storage import store as q
from keyward.storage import usage_queries as uq
from keyward.usage.loads import pool_loads
from support.fakes import fake_auth_key, fake_standard_key

NOW = datetime(2026, 3, 10, 18, 0, 30, tzinfo=timezone.utc)
FLASH, PRO = "gemini-2.5-flash", "gemini-2.5-pro"

CONFIG = f"""
[pools.main]
model = "{FLASH}"
[[pools.main.sinks]]
type = "null"

[pools.deep]
model = "{PRO}"
[[pools.deep.sinks]]
type = "null"

[projects.alpha-one]
pool = "main"
[projects.alpha-one.limits."{FLASH}"]
rpm = 10
tpm = 1000
rpd = 100

[projects.beta-two]
pool = "main"

[projects.gamma-three]
pool = "deep"
[projects.gamma-three.limits."{PRO}"]
rpd = 50
"""


@pytest.fixture
def ctx(tmp_path, any_db_url):
    path = tmp_path / "keyward.toml"
    path.write_text(f'database = "{any_db_url}"\n' + CONFIG, encoding="utf-8")
    env = {"KEYWARD_STATE_DIR": str(tmp_path / "state"), "KEYWARD_RUNTIME_DIR": str(tmp_path / "run"),
           "HOME": str(tmp_path / "home")}
    clock = lambda: NOW  # noqa: E731
    ctx = Context(load_config(path, env=env), clock=clock, env=env)
    inventory.add_project(ctx, "delta-four", pool="main", number="123456")
    inventory.add_project(ctx, "epsilon-five", pool="deep")
    inventory.add_pool(ctx, "empty", "gemini-2.0-flash")
    for project in ("alpha-one", "beta-two", "gamma-three", "delta-four"):
        inventory.add_key(ctx, project, fake_auth_key())
    old = inventory.add_key(ctx, "alpha-one", fake_standard_key())
    inventory.add_key(ctx, "alpha-one", fake_auth_key(), replaces=old.key_id)
    with ctx.store.write() as s:
        pk = {p.project_id: p.id for p in q.list_projects(s)}
        gone = q.add_key(s, q.get_project(s, "gamma-three"), key_id="kw-gone", secret=None, kind="auth",
                         state="retired", origin="keyward", now=NOW - timedelta(days=40))
        gone.retired_at = NOW - timedelta(days=10)
        q.set_limit(s, q.get_project(s, "delta-four"), "*", rpm=5, tpm=None, rpd=-1, source="google")
        q.set_limit(s, q.get_project(s, "alpha-one"), "*", rpm=1, tpm=1, rpd=1, source="google")
        q.set_limit(s, q.get_project(s, "beta-two"), FLASH, rpm=0, tpm=0, rpd=0, source="google")
        q.get_project(s, "gamma-three").rotation_failures = 2
        q.get_project(s, "gamma-three").rotation_backoff_until = NOW + timedelta(minutes=5)
        minute = minute_floor(NOW)
        for project, model, at, counts in (
                ("alpha-one", FLASH, minute, (3, 300, 0)),
                ("alpha-one", FLASH, minute - timedelta(minutes=1), (2, 20, 0)),
                ("alpha-one", FLASH, minute - timedelta(minutes=5), (7, 70, 0)),  # out of the window
                ("beta-two", FLASH, minute - timedelta(days=1), (9, 90, 0)),  # yesterday
                ("gamma-three", PRO, minute, (4, 40, 0)),
                ("gamma-three", FLASH, minute, (8, 80, 0)),  # not the pool's model
                ("delta-four", FLASH, minute - timedelta(minutes=1), (1, 10, 0))):
            uq.add_local(s, pk[project], model, at, pacific_date(at), counts)
        for project, model, until in (("alpha-one", FLASH, NOW + timedelta(seconds=40)),
                                      ("delta-four", FLASH, NOW - timedelta(seconds=1)),  # ended
                                      ("gamma-three", FLASH, NOW + timedelta(hours=1))):  # other model
            uq.set_exhaustion(s, pk[project], model, until=until, scope="minute", quota_ids="", now=NOW)
    yield ctx
    ctx.close()


def test_listings_when_read_through_core_equal_the_orm_queries(ctx):
    with ctx.store.read() as s:
        pools = [(p.name, p.model, p.origin, len(p.projects), p.current_key_id, p.current_reason)
                 for p in q.list_pools(s)]
        projects = {pool: [(p.project_id, p.number, p.pool.name, p.managed, p.service_account,
                            tuple(filter(None, p.allowed_ips.split(","))), p.origin)
                           for p in q.list_projects(s, pool)] for pool in (None, "main", "nonesuch")}
        keys = {(project, retired): [inventory.KeyView.of(k) for k in q.list_keys(s, project, include_retired=retired)]
                for project in (None, "alpha-one", "gamma-three") for retired in (True, False)}
    assert [tuple(vars(v).values()) for v in inventory.list_pools(ctx)] == pools
    assert len(pools) == 3
    for pool, expected in projects.items():
        assert [tuple(vars(v).values()) for v in inventory.list_projects(ctx, pool)] == expected
    for (project, retired), expected in keys.items():
        assert inventory.list_keys(ctx, project, include_retired=retired) == expected
    assert any(k.state == "retired" for k in keys[(None, True)])
    assert any(k.state == "previous" for k in keys[("alpha-one", False)])


def test_list_keys_when_project_unknown_says_so(ctx):
    with pytest.raises(inventory.NotFound, match="no project 'zeta-six'"):
        inventory.list_keys(ctx, "zeta-six")


def test_status_rows_when_read_through_core_equal_the_orm_objects(ctx):
    with ctx.store.read() as s:
        projects = [(p.project_id, p.managed, p.rotation_failures, p.rotation_backoff_until, p.pool.name,
                     p.pool.model) for p in q.list_projects(s)]
        keys = {k.key_id: (k.kind, k.state, k.origin, k.masked, k.created_at, k.rotate_after, k.grace_until,
                           k.invalid_reason, k.has_secret, k.sealed_by, k.project.project_id, k.project.managed,
                           k.project.pool_id) for k in q.list_keys(s)}
    with ctx.store.read_rows() as conn:
        assert [tuple(r)[:6] for r in rq.status_projects(conn, NOW)] == projects
        rows = rq.status_keys(conn)
    assert {r.key_id: tuple(r)[1:] for r in rows} == keys
    assert [(r.project_id, r.created_at) for r in rows] == sorted((r.project_id, r.created_at) for r in rows)
    assert len(rows) == 7


@pytest.mark.parametrize("seconds", [0, 30, 60, 100, 3600])
def test_status_figures_when_read_from_summaries_equal_the_minute_buckets(ctx, seconds):
    now = NOW + timedelta(seconds=seconds)
    ctx.clock = lambda: now
    with ctx.store.read() as s:
        expected = {pl.project_id: pl for pool in q.list_pools(s) for pl in pool_loads(s, pool, now)}
    projects = build_status(ctx)["projects"]
    assert {p["project_id"] for p in projects} == set(expected)
    for p in projects:
        pl = expected[p["project_id"]]
        no_quota = pl.load is not None and math.isinf(pl.load)
        assert p["model"] == pl.model
        assert {name: (u["used"], u["limit"]) for name, u in p["usage"].items()} == {
            name: (getattr(pl.usage, name), None if getattr(pl.limits, name) is None or getattr(pl.limits, name) < 0
                   else getattr(pl.limits, name)) for name in ("rpm", "tpm", "rpd")}
        assert p["limit_source"] == pl.limit_source
        assert (p["load"], p["no_quota"]) == (None if pl.load is None or no_quota else round(pl.load, 4), no_quota)
        assert (p["exhausted_until"], p["exhausted_scope"]) == (iso(pl.exhausted_until), pl.exhausted_scope)
        assert p["rpd_reset_at"] == iso(pl.rpd_reset_at)
    # the world is varied enough for the comparison to mean something
    by_id = {p["project_id"]: p for p in projects}
    if seconds == 0:
        assert by_id["alpha-one"]["usage"]["rpm"]["used"] == 5 and by_id["alpha-one"]["exhausted"]
        assert by_id["beta-two"]["no_quota"] and by_id["beta-two"]["usage"]["rpd"]["used"] == 0
        assert by_id["delta-four"]["limit_source"] == "google" and not by_id["delta-four"]["exhausted"]
        assert by_id["gamma-three"]["usage"]["rpm"]["used"] == 4 and not by_id["gamma-three"]["exhausted"]
        assert by_id["epsilon-five"]["limit_source"] is None and by_id["epsilon-five"]["load"] is None
