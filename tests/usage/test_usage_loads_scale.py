"""`pool_loads` stays fast as history grows: for 1,000 projects with two days of minute buckets and
weeks of day rows it issues the same few bulk queries as for one project (its time is measured in
bench/status_speed.py, not here)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import event, insert

from keyward.config import load_config
from keyward.context import Context
from keyward.quota.windows import minute_floor, pacific_date
from keyward.storage import store as q
from keyward.storage.models import Project, UsageDay, UsageMinute
from keyward.usage.accounting import pool_loads

NOW = datetime(2026, 3, 4, 18, 30, 15, tzinfo=timezone.utc)
PROJECTS = 1000
MODEL = "gemini-2.5-flash"


def test_pool_loads_for_1000_projects_with_48h_of_minutes_uses_a_few_bulk_queries(tmp_path, sqlite_url):
    path = tmp_path / "keyward.toml"
    path.write_text(f'database = "{sqlite_url}"\n[pools.main]\nmodel = "{MODEL}"\n'
                    '[[pools.main.sinks]]\ntype = "null"\n')
    env = {"KEYWARD_STATE_DIR": str(tmp_path / "state"), "KEYWARD_RUNTIME_DIR": str(tmp_path / "run")}
    ctx = Context(load_config(path, env=env), clock=lambda: NOW, env=env)
    with ctx.store.write() as s:
        pool = q.get_pool(s, "main")
        s.execute(insert(Project), [
            {"project_id": f"load-project-{i:04d}", "pool_id": pool.id, "managed": False,
             "allowed_ips": "", "origin": "cli", "rotation_failures": 0, "created_at": NOW}
            for i in range(PROJECTS)])
        pks = [p.id for p in q.list_projects(s, "main")]
        now_minute = minute_floor(NOW)
        # Every 40th minute of 48 hours, plus the last three minutes of each project, both sources.
        minutes = [now_minute - timedelta(minutes=m) for m in (*range(0, 2880, 40), 1, 2)]
        s.execute(insert(UsageMinute), [
            {"project_pk": pk, "model": MODEL, "minute": m, "source": src, "requests": 2,
             "input_tokens": 10, "output_tokens": 1}
            for pk in pks for m in minutes for src in ("local", "monitoring")])
        days = [pacific_date(NOW) - timedelta(days=d) for d in range(30)]
        s.execute(insert(UsageDay), [
            {"project_pk": pk, "model": MODEL, "day": d, "source": src, "requests": 7,
             "input_tokens": 0, "output_tokens": 0}
            for pk in pks for d in days for src in ("local", "effective")])
    statements: list[str] = []

    def count(conn, cursor, statement, *args):
        statements.append(statement)

    with ctx.store.read() as s:
        pool = q.get_pool(s, "main")
        event.listen(ctx.store.engine, "before_cursor_execute", count)
        try:
            loads = pool_loads(s, pool, NOW)
        finally:
            event.remove(ctx.store.engine, "before_cursor_execute", count)
    ctx.close()
    assert len(loads) == PROJECTS
    assert loads[0].usage.rpm == 4 and loads[0].usage.rpd == 7  # max of sources, 2 minutes
    assert len(statements) <= 6, f"{len(statements)} queries: pool_loads must not query per project"
