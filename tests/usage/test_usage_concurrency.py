"""Eight processes report at once: every report is counted exactly once, and nobody sees
"database is locked" (SQLite writers take BEGIN IMMEDIATE; PostgreSQL upserts are atomic)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from usage_world import MODEL, make_world

from keyward.quota.windows import pacific_date
from keyward.storage import usage_queries as uq
from keyward.usage.ingest import IngestServer

WORKERS, EACH = 8, 500
WORKER = Path(__file__).with_name("usage_worker.py")
ROOT = Path(__file__).resolve().parents[2]
PROJECTS = {"alpha-one": None, "beta-two": None, "gamma-three": None}


def _run_workers(world, each: int = EACH) -> list[dict]:
    keys = json.dumps([[world.secrets[p], world.keys[p]] for p in PROJECTS])
    env = {**os.environ, **world.env, "PYTHONPATH": str(ROOT)}
    env.pop("KEYWARD_CONFIG", None)
    procs = [subprocess.Popen([sys.executable, str(WORKER), str(world.config_path), str(each), keys],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(WORKERS)]
    outs = []
    for proc in procs:
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err
        assert "locked" not in err
        outs.append(json.loads(out.strip().splitlines()[-1]))
    return outs


def _totals(world) -> dict[str, tuple[int, int, int]]:
    day = pacific_date(world.clock.now)
    sums = {"local": [0, 0, 0], "effective": [0, 0, 0]}
    minute_requests = 0
    with world.ctx.store.read() as s:
        for project_id in PROJECTS:
            pk = world.project_pk(project_id)
            for source, counts in uq.day_totals(s, pk, MODEL, day).items():
                for i in range(3):
                    sums[source][i] += counts[i]
            minute_requests += sum(c[0] for (m, src), c in uq.minute_totals(s, pk, MODEL).items()
                                   if src == "local")
    assert minute_requests == sums["local"][0]
    return {k: tuple(v) for k, v in sums.items()}


def _expected(each: int = EACH) -> tuple[int, int, int]:
    return (WORKERS * each, WORKERS * sum(i % 7 for i in range(each)), WORKERS * each)


def _world(tmp_path, url):
    # The workers run on the real clock; the world's clock only needs to name the same day.
    from datetime import datetime, timezone

    return make_world(tmp_path, url, PROJECTS, now=datetime.now(timezone.utc))


def test_eight_processes_reporting_to_sqlite_directly_lose_nothing(tmp_path, sqlite_url):
    world = _world(tmp_path, sqlite_url)
    outs = _run_workers(world)
    assert all(o == {"database": EACH} for o in outs)
    totals = _totals(world)
    assert totals["local"] == _expected() and totals["effective"] == _expected()
    world.ctx.close()


def test_eight_processes_reporting_through_the_ingest_socket_lose_nothing(tmp_path, sqlite_url):
    world = _world(tmp_path, sqlite_url)
    server = IngestServer(world.ctx, world.ctx.config.daemon.ingest_socket).start()
    try:
        outs = _run_workers(world)
    finally:
        server.stop()
    assert all(o == {"daemon": EACH} for o in outs)
    totals = _totals(world)
    assert totals["local"] == _expected() and totals["effective"] == _expected()
    world.ctx.close()


def test_eight_processes_reporting_to_postgresql_lose_nothing(tmp_path, pg_url):
    each = 125  # every commit waits for PostgreSQL's fsync: fewer reports keep the suite quick
    world = _world(tmp_path, pg_url)
    outs = _run_workers(world, each)
    assert all(o == {"database": each} for o in outs)
    assert _totals(world)["local"] == _expected(each)
    world.ctx.close()
