"""Google's latency and keyward: the Monitoring poll over N projects, and `keyward run` start to READY.

keyward's emulator of Google's APIs (started in this process) answers every Monitoring read after
`--latency-ms` (100 by default, a usual figure for Google) and enforces Monitoring's read quota
(6,000 reads a minute, charged to the caller's quota project whichever project is read), so a
poll that outruns the quota fails here as it would at Google. For each N it times, in the same run:

    serial floor                 N projects x 2 reads x latency: one call at a time, nothing else
    poll, one worker             poll_monitoring, one project at a time (smallest N only)
    poll, per project            poll_monitoring as configured by default: usage.poll_workers
                                 projects at once, every read paced to monitoring_reads_per_minute
    poll, metrics scopes         the same N projects in metrics scopes of 375 (usage.metrics_scopes):
                                 one membership read and two timeSeries reads (plus pages) per scope
    keyward run: READY=1         a real daemon, Monitoring on (per project), from start to READY=1
    keyward run: first pass      ... to the end of its first full pass (which runs after READY)

Usage: python3 bench/google_parallel.py [--quick] [--sizes 100,1000] [--latency-ms 100]
`--quick` (for CI) uses N = 10 and 40 with 50 ms. Targets: the poll of 1,000 projects < 15 s
(both ways); READY < 5 s whatever the latency. Per project, a poll makes 2 x N reads, so past
3,000 projects the 6,000-a-minute quota (not the workers) sets the pace: use metrics scopes.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the bench helpers beside this file only

import _world  # noqa: E402

SCOPE_SIZE = 375  # the most projects one metrics scope monitors
READ_QUOTA = 6000  # Google's usual default of the Monitoring read quota, per minute


def _scoped(root: Path, config: Path, env: dict[str, str], emu, n: int) -> Path:
    """Put the N projects into metrics scopes of 375 (at the emulator, and their numbers into
    keyward's database, which matches members by number); return a config listing the scopes."""
    from keyward.config import load_config
    from keyward.context import Context
    from keyward.storage import store as q

    scopes = [f"bench-scope-{j:03d}" for j in range(math.ceil(n / SCOPE_SIZE))]
    for j, scope in enumerate(scopes):
        emu.add_project(scope, str(200000000000 + j))
    for i in range(n):
        emu.add_to_metrics_scope(scopes[i // SCOPE_SIZE], f"bench-project-{i:05d}")
    ctx = Context(load_config(config, env=env), env=env)
    with ctx.store.write() as s:
        for i in range(n):
            project = q.find_project(s, f"bench-project-{i:05d}")
            project.number = str(300000000000 + i)
    ctx.close()
    listed = ", ".join(f'"{scope}"' for scope in scopes)
    path = root / "scoped.toml"
    path.write_text(config.read_text().replace("[usage]\n", f"[usage]\nmetrics_scopes = [{listed}]\n", 1))
    return path


def _poll(path: Path, env: dict[str, str]) -> float:
    from keyward.config import load_config
    from keyward.context import Context
    from keyward.usage.accounting import poll_monitoring

    ctx = Context(load_config(path, env=env), env=env)
    ctx.store
    t0 = time.perf_counter()
    summary = poll_monitoring(ctx, force=True)
    took = time.perf_counter() - t0
    ctx.close()
    if summary.failures:
        raise SystemExit(f"{len(summary.failures)} project(s) failed: {next(iter(summary.failures.values()))}")
    return took


def measure(n: int, latency_ms: int, serial: bool) -> dict[str, float | None]:
    from keyward.emulator import Emulator

    emu = Emulator().start()
    out: dict[str, float | None] = {"serial floor (s)": 2 * n * latency_ms / 1000}
    try:
        emu.monitoring_lag_seconds = 0
        emu.monitoring_reads_per_minute = READ_QUOTA
        for i in range(n):
            emu.add_project(f"bench-project-{i:05d}", str(300000000000 + i))
        emu.inject_fault("monitoring", status=0, latency_ms=latency_ms, count=10**8)
        os.environ["KEYWARD_GOOGLE_EMULATOR_HOST"] = emu.address
        root = _world.sandbox()
        config, env = _world.build(root, n, monitoring=True)
        os.environ.update(env)
        one = root / "poll-1.toml"
        one.write_text(config.read_text().replace("[usage]\n", "[usage]\npoll_workers = 1\n", 1))
        out["poll, one worker (s)"] = _poll(one, env) if serial else None
        out["poll, per project (s)"] = _poll(config, env)
        out["poll, metrics scopes (s)"] = _poll(_scoped(root, config, env, emu, n), env)
        emu.monitoring_reads_per_minute = READ_QUOTA  # a fresh minute's budget for the daemon
        daemon = _world.Daemon(config, {**os.environ, **env}, root)
        try:
            out["keyward run: READY=1 (s)"] = daemon.wait_ready(600)
            log = root / "daemon.log"
            deadline = time.monotonic() + 3600
            while b"first pass done" not in log.read_bytes():
                if time.monotonic() > deadline or daemon.proc.poll() is not None:
                    raise SystemExit("the first pass never ended: " + log.read_text()[-800:])
                time.sleep(0.1)
            out["keyward run: first pass (s)"] = time.perf_counter() - daemon.started
        finally:
            daemon.stop()
    finally:
        emu.stop()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N = 10 and 40, 50 ms (for CI)")
    parser.add_argument("--sizes", default=None, help="comma-separated N (default 100,1000)")
    parser.add_argument("--latency-ms", type=int, default=None)
    args = parser.parse_args()
    sizes = [int(x) for x in (args.sizes or ("10,40" if args.quick else "100,1000")).split(",")]
    latency = args.latency_ms or (50 if args.quick else 100)
    print(f"keyward from {_world.installed_from()}")
    print(f"machine: {_world.machine()}; Google answering in {latency} ms (emulator)")
    results = {n: measure(n, latency, serial=(n == sizes[0])) for n in sizes}
    rows = list(next(iter(results.values())))
    width = max(map(len, rows))
    print(f"{'seconds':<{width}}" + "".join(f"{'N=' + str(n):>10}" for n in sizes) + "  growth")
    for row in rows:
        values = [results[n][row] for n in sizes]
        cells = "".join(f"{v:>10.2f}" if v is not None else f"{'-':>10}" for v in values)
        known = [(n, v) for n, v in zip(sizes, values) if v is not None]
        print(f"{row:<{width}}{cells}  {_world.growth(known) if len(known) > 1 else ''}")
    if 1000 in results:
        polls = {row: results[1000][row] for row in ("poll, per project (s)", "poll, metrics scopes (s)")}
        verdict = ", ".join(f"{row.split(', ')[1].split(' (')[0]} {v:.1f} s "
                            f"({'met' if v < 15 else 'NOT met'})" for row, v in polls.items())
        print(f"target: the poll of 1,000 projects < 15 s: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
