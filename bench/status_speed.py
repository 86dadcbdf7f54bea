"""How long `keyward status --json` takes on a big installation, next to an empty interpreter.

Builds a SQLite database with PROJECTS projects in POOLS pools, one active auth key each, config
limits, and HOURS of per-minute usage buckets for every project (48 h is what the default
minute_retention keeps), then times, each in fresh processes measured in the same run:

    python3 -c pass                     the interpreter alone
    keyward pool list                   any command that opens the database (imports, schema check)
    keyward status --json               the command under test
    build_status + json (in process)    keyward's own work, without start-up

Usage: python3 bench/status_speed.py [--quick] [--projects N] [--hours H] [--runs R]
`--quick` (for CI) uses 100 projects and 2 hours. The target is status --json under 300 ms.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

TARGET_MS = 300.0
MODEL = "gemini-2.5-flash"


def build(root: Path, projects: int, pools: int, hours: int) -> tuple[Path, dict[str, str]]:
    from sqlalchemy import insert

    from keyward.config import load_config
    from keyward.context import Context
    from keyward.publishing.service import publish_pools
    from keyward.quota.windows import minute_floor, pacific_date
    from keyward.storage import store as q
    from keyward.storage.models import UsageDay, UsageMinute

    env = {"HOME": str(root), "KEYWARD_STATE_DIR": str(root / "state"), "KEYWARD_RUNTIME_DIR": str(root / "run")}
    config = root / "keyward.toml"
    config.write_text("".join(f'[pools.p{i}]\nmodel = "{MODEL}"\n[[pools.p{i}.sinks]]\ntype = "null"\n\n'
                              for i in range(pools)), encoding="utf-8")
    now = datetime.now(timezone.utc)
    ctx = Context(load_config(config, env=env), env=env)
    with ctx.store.write() as s:
        pool_rows = [q.get_pool(s, f"p{i}") for i in range(pools)]
        pks = []
        for n in range(projects):
            project = q.upsert_project(s, f"bench-project-{n:04d}", pool_rows[n % pools])
            q.set_limit(s, project, MODEL, rpm=60, tpm=1_000_000, rpd=10_000, source="cli")
            q.add_key(s, project, key_id=f"kw-bench-{n:04d}", secret="AQ." + secrets.token_urlsafe(40),
                      kind="auth", state="active", origin="manual", now=now - timedelta(days=3),
                      promoted_at=now - timedelta(days=3), rotate_after=now + timedelta(days=12))
            pks.append(project.id)
        q.set_meta(s, "heartbeat", json.dumps({"pid": os.getpid(), "host": "bench", "started_at": now.isoformat(),
                                               "version": "bench"}), now=now)
    start = minute_floor(now) - timedelta(hours=hours)
    minutes = [start + timedelta(minutes=m) for m in range(hours * 60 + 1)]
    with ctx.store.engine.begin() as conn:
        for pk in pks:
            conn.execute(insert(UsageMinute.__table__), [
                {"project_pk": pk, "model": MODEL, "minute": m, "source": "local", "requests": (pk + i) % 7,
                 "input_tokens": 100 * ((pk + i) % 7), "output_tokens": 0} for i, m in enumerate(minutes)])
            conn.execute(insert(UsageDay.__table__), [
                {"project_pk": pk, "model": MODEL, "day": pacific_date(now), "source": src, "requests": 500,
                 "input_tokens": 50_000, "output_tokens": 0} for src in ("local", "effective")])
    publish_pools(ctx, trigger="bench")
    ctx.close()
    return config, env


def time_process(argv: list[str], env: dict[str, str], runs: int) -> float:
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        proc = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        samples.append((time.perf_counter() - t0) * 1000)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(argv[:4])}… failed: {proc.stderr.decode()[-500:]}")
    return statistics.median(samples)


@contextlib.contextmanager
def daemon_status_socket(config: Path, env: dict[str, str]):
    """Serve status the way the running daemon does (its StatusServer, in this process)."""
    from keyward.config import load_config
    from keyward.context import Context
    from keyward.status_socket import StatusServer, socket_path

    ctx = Context(load_config(config, env=env), env=env)
    ctx.store
    server = StatusServer(lambda: ctx, socket_path(ctx.config.runtime_dir)).start()
    try:
        yield
    finally:
        server.stop()
        ctx.close()


def time_in_process(config: Path, env: dict[str, str], runs: int) -> float:
    from keyward.config import load_config
    from keyward.context import Context
    from keyward.status import build_status

    ctx = Context(load_config(config, env=env), env=env)
    ctx.store  # open (and check) the database outside the timing, as a running process would
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        json.dumps(build_status(ctx), indent=2, sort_keys=True)
        samples.append((time.perf_counter() - t0) * 1000)
    ctx.close()
    return statistics.median(samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 projects, 2 hours (for CI)")
    parser.add_argument("--projects", type=int)
    parser.add_argument("--pools", type=int, default=4)
    parser.add_argument("--hours", type=int)
    parser.add_argument("--runs", type=int)
    args = parser.parse_args()
    projects = args.projects or (100 if args.quick else 1000)
    hours = args.hours or (2 if args.quick else 48)
    runs = args.runs or (3 if args.quick else 7)
    with tempfile.TemporaryDirectory(prefix="keyward-bench-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        config, env = build(root, projects, args.pools, hours)
        built_s = time.perf_counter() - t0
        penv = {**os.environ, **env, "PYTHONPATH": str(REPO)}
        kw = [sys.executable, "-m", "keyward", "--config", str(config)]
        rows = [
            ("python3 -c pass", time_process([sys.executable, "-c", "pass"], penv, runs)),
            ("keyward pool list", time_process(kw + ["pool", "list"], penv, runs)),
            ("keyward status --json, no daemon", time_process(kw + ["status", "--json"], penv, runs)),
        ]
        with daemon_status_socket(config, env):
            rows.append(("keyward status --json, daemon answers", time_process(kw + ["status", "--json"],
                                                                              penv, runs)))
        rows.append(("build_status + json (in process)", time_in_process(config, env, runs)))
    print(f"{projects} projects in {args.pools} pools, {hours} h of minute buckets "
          f"({projects * (hours * 60 + 1):,} rows), built in {built_s:.1f}s; median of {runs} runs")
    width = max(len(name) for name, _ in rows)
    print(f"{'what'.ljust(width)}  {'ms':>8}")
    for name, ms in rows:
        print(f"{name.ljust(width)}  {ms:8.1f}")
    status_ms = rows[3][1]
    verdict = "meets" if status_ms < TARGET_MS else "MISSES"
    print(f"status --json with the daemon running {verdict} the {TARGET_MS:.0f} ms target "
          f"({status_ms / rows[0][1]:.1f}x the bare interpreter); without a daemon the command "
          "imports SQLAlchemy and builds the status itself")
    return 0


if __name__ == "__main__":
    sys.exit(main())
