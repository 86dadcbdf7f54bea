"""How long from an exhausting 429 report until the pool's secret file holds another key.

A pool of many projects publishes to a file sink. Each round reports a per-day 429 for the project
whose key is published (so it stays out for the rest of the run) and times how long until the file
shows a different key: through the ingest socket of a real daemon (`keyward run`, which republishes
on its effects thread) and straight to the database when no daemon listens (republished by the
reporting process). Target: p99 < 200 ms.

    python bench/exhaust_switch_latency.py [--quick] [--rounds 100]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODEL = "gemini-2.5-flash"
DEADLINE = 5.0


def python_pass_ms() -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return (time.perf_counter() - start) * 1000


def per_day_429() -> str:
    return json.dumps({"error": {
        "code": 429, "status": "RESOURCE_EXHAUSTED",
        "message": "You exceeded your current quota, please check your plan and billing details.",
        "details": [{"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{
            "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
            "quotaId": "GenerateRequestsPerDayPerProjectPerModel-FreeTier",
            "quotaDimensions": {"location": "global", "model": MODEL}, "quotaValue": "250"}]},
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "26s"}]}})


def make_world(root: Path, projects: int):
    from keyward.config import load_config
    from keyward.context import Context
    from keyward.storage import store as q

    key_file = root / "run" / "main.key"
    lines = [f'database = "sqlite:///{root}/state/keyward.db"', "[usage]", "monitoring = false",
             "[pools.main]", f'model = "{MODEL}"',
             "[[pools.main.sinks]]", 'type = "file"', f'path = "{key_file}"']
    names = [f"bench-project-{i:04d}" for i in range(projects)]
    for name in names:
        lines += [f"[projects.{name}]", 'pool = "main"', f'[projects.{name}.limits."{MODEL}"]',
                  "rpm = 1000", "rpd = 100000"]
    config_path = root / "keyward.toml"
    config_path.write_text("\n".join(lines) + "\n")
    env = {"KEYWARD_STATE_DIR": str(root / "state"), "KEYWARD_RUNTIME_DIR": str(root / "run"),
           "HOME": str(root)}
    ctx = Context(load_config(config_path, env=env), env=env)
    with ctx.store.write() as s:
        for name in names:
            q.add_key(s, q.get_project(s, name), key_id=f"k-{name}",
                      secret="AQ." + secrets.token_urlsafe(40), kind="auth", state="active",
                      origin="manual", promoted_at=ctx.now())
    from keyward.publishing.service import publish_pools

    publish_pools(ctx, ["main"], trigger="bench")
    return ctx, config_path, env, key_file


def rounds(path: str, n: int) -> list[float]:
    from _world import Daemon

    from keyward.sinks.file import read_published_file
    from keyward.usage.reporter import send_reports
    from keyward.usage.reports import ErrorReport

    body = json.loads(per_day_429())
    with tempfile.TemporaryDirectory() as tmp:
        ctx, config_path, env, key_file = make_world(Path(tmp), n + 1)
        server = None
        if path == "socket":
            server = Daemon(config_path, {**os.environ, **env}, Path(tmp))
            server.wait_ready(120)
            if not ctx.config.daemon.ingest_socket.exists():
                server.stop()
                raise SystemExit("the daemon is ready but its ingest socket is missing")
        times = []
        try:
            for _ in range(n):
                before = read_published_file(str(key_file), "raw")
                start = time.perf_counter()
                reply = send_reports([ErrorReport(429, body, pool="main")], config=ctx.config,
                                     context=lambda: ctx)
                assert reply["via"] == ("daemon" if server else "database"), reply
                while read_published_file(str(key_file), "raw") == before:
                    if time.perf_counter() - start > DEADLINE:
                        raise SystemExit(f"{path}: the key file did not change within {DEADLINE}s")
                    time.sleep(0.0005)
                times.append((time.perf_counter() - start) * 1000)
        finally:
            if server is not None:
                server.stop()
            ctx.close()
    return times


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few rounds, for CI")
    parser.add_argument("--rounds", type=int, default=None)
    args = parser.parse_args()
    n = args.rounds or (20 if args.quick else 100)
    from _world import installed_from, machine

    print(f"keyward from {installed_from()}; {machine()}")
    print(f"python3 -c pass: {python_pass_ms():.1f} ms (for scale)")
    print(f"{'path':<10}{'rounds':>7}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    worst = 0.0
    for path in ("socket", "database"):
        times = rounds(path, n)
        p99 = pct(times, 99)
        worst = max(worst, p99)
        print(f"{path:<10}{n:>7}{statistics.median(times):>9.1f}{p99:>9.1f}{max(times):>9.1f}")
    verdict = "meets" if worst < 200 else "MISSES"
    print(f"target: p99 < 200 ms ({verdict} it on this machine, this run)")
    # Timing on a shared machine is noise-prone: report, never fail. Correctness failures (a key
    # file that never changes) still end the run with an error above.
    return 0


if __name__ == "__main__":
    sys.exit(main())
