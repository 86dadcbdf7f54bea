"""Google's latency and keyward: the Monitoring poll over N projects, and `keyward run` start to READY.

keyward's emulator of Google's APIs (started in this process) answers every Monitoring read after
`--latency-ms` (100 by default, a usual figure for Google). For each N it times, in the same run:

    serial floor                 N projects x 2 reads x latency: one call at a time, nothing else
    poll, one worker             poll_monitoring with usage.poll_workers = 1 (smallest N only)
    poll, usage.poll_workers     poll_monitoring as the daemon runs it (default 8 workers)
    keyward run: READY=1         a real daemon, Monitoring on, from start to READY=1
    keyward run: first pass      ... to the end of its first full pass (which runs after READY)

Usage: python3 bench/google_parallel.py [--quick] [--sizes 100,1000] [--latency-ms 100]
`--quick` (for CI) uses N = 10 and 40 with 50 ms. Targets: the poll of 1,000 projects < 15 s;
READY < 5 s whatever the latency. (10,000 projects: pass --sizes 10000; the poll then takes minutes
by design, bounded by Google's read quota.)
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the bench helpers beside this file only

import _world  # noqa: E402


def measure(n: int, latency_ms: int, serial: bool) -> dict[str, float | None]:
    from keyward.config import load_config
    from keyward.context import Context
    from keyward.emulator import Emulator
    from keyward.usage.accounting import poll_monitoring

    emu = Emulator().start()
    out: dict[str, float | None] = {"serial floor (s)": 2 * n * latency_ms / 1000}
    try:
        emu.monitoring_lag_seconds = 0
        for i in range(n):
            emu.add_project(f"bench-project-{i:05d}", str(300000000000 + i))
        emu.inject_fault("monitoring", status=0, latency_ms=latency_ms, count=10**8)
        os.environ["KEYWARD_GOOGLE_EMULATOR_HOST"] = emu.address
        root = _world.sandbox()
        config, env = _world.build(root, n, monitoring=True)
        os.environ.update(env)
        for workers, label, wanted in ((1, "poll, one worker (s)", serial), (None, "poll, usage.poll_workers (s)", True)):
            if not wanted:
                out[label] = None
                continue
            extra = "" if workers is None else f"poll_workers = {workers}\n"
            text = config.read_text().replace("[usage]\n", "[usage]\n" + extra, 1)
            path = root / f"poll-{workers}.toml"
            path.write_text(text)
            ctx = Context(load_config(path, env=env), env=env)
            ctx.store
            t0 = time.perf_counter()
            summary = poll_monitoring(ctx, force=True)
            out[label] = time.perf_counter() - t0
            ctx.close()
            if summary.failures:
                raise SystemExit(f"{len(summary.failures)} project(s) failed: {next(iter(summary.failures.values()))}")
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
