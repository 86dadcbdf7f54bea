"""How much memory an idle `keyward run` holds as the installation grows, and whether it grows.

For each N (projects in 4 pools, one key each, Monitoring off, no Google credentials: the first
pass's limits job loads google-auth to look for credentials and stops there, so no request reaches
Google and googleapiclient is never loaded; with `--google` the daemon calls keyward's emulator of
Google instead, as a daemon with credentials does) it starts a
real daemon, waits for READY=1 and the end of its first pass, then samples its RSS (from /proc)
for `--minutes` while it runs its timers idle, printing its RSS at each of `--marks` equal steps
(the growth while idle) and the slope per hour from a straight line through every sample. The
reference, in the same run, is a bare interpreter's RSS. Target: < 80 MB at 1,000 projects, flat
while idle.

    python bench/daemon_memory.py [--quick] [--sizes 100,1000,10000] [--minutes 3] [--marks 3] [--google]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the bench helpers beside this file only

import _world  # noqa: E402


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def bare_mb() -> float:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        time.sleep(0.5)
        return rss_mb(proc.pid)
    finally:
        proc.kill()
        proc.wait()


def slope_per_hour(samples: list[tuple[float, float]]) -> float:
    """MB per hour of the least-squares line through (seconds, MB) samples."""
    if len(samples) < 2:
        return 0.0
    mt = sum(t for t, _ in samples) / len(samples)
    mm = sum(m for _, m in samples) / len(samples)
    var = sum((t - mt) ** 2 for t, _ in samples)
    return 0.0 if var == 0 else 3600 * sum((t - mt) * (m - mm) for t, m in samples) / var


def measure(n: int, minutes: float, marks: int, google=None) -> tuple[float, list[float], float, float]:
    root = _world.sandbox()
    config, env = _world.build(root, n, pools=4, sink="null")
    if google is not None:
        for k in range(n):
            google.add_project(f"bench-project-{k:05d}", str(300_000_000_000 + k))
        env = {**env, "KEYWARD_GOOGLE_EMULATOR_HOST": google.address}
    daemon = _world.Daemon(config, {**os.environ, **env}, root)
    try:
        daemon.wait_ready(600)
        deadline = time.monotonic() + 600
        while b"first pass done" not in (root / "daemon.log").read_bytes():
            if time.monotonic() > deadline or daemon.proc.poll() is not None:
                raise SystemExit("the first pass never ended")
            time.sleep(0.2)
        time.sleep(2)
        first = rss_mb(daemon.proc.pid)
        start = time.monotonic()
        samples, at_marks = [(0.0, first)], []
        step = minutes * 60 / marks
        for k in range(1, marks + 1):
            while time.monotonic() < start + k * step:
                time.sleep(min(5.0, max(0.05, start + k * step - time.monotonic())))
                samples.append((time.monotonic() - start, rss_mb(daemon.proc.pid)))
            at_marks.append(samples[-1][1])
        return first, at_marks, max(m for _, m in samples), slope_per_hour(samples)
    finally:
        daemon.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N = 20 and 100, 20 s each (for CI)")
    parser.add_argument("--sizes", default=None, help="comma-separated N (default 100,1000,10000)")
    parser.add_argument("--minutes", type=float, default=None)
    parser.add_argument("--marks", type=int, default=3, help="RSS columns printed over --minutes")
    parser.add_argument("--google", action="store_true",
                        help="the daemon calls keyward's Google emulator (limits, rotation checks)")
    args = parser.parse_args()
    sizes = [int(x) for x in (args.sizes or ("20,100" if args.quick else "100,1000,10000")).split(",")]
    minutes = args.minutes or (1 / 3 if args.quick else 3)
    print(f"keyward from {_world.installed_from()}")
    print(f"machine: {_world.machine()}; bare interpreter RSS {bare_mb():.1f} MB (same run)")
    marks = max(1, args.marks)
    google = None
    if args.google:
        from keyward.emulator import Emulator

        google = Emulator().start()
        print(f"the daemon calls Google's emulator at {google.address}")
    heads = "".join(f"{f'+{minutes * (k + 1) / marks:.1f} min':>10}" for k in range(marks))
    print(f"{'N':>7} {'RSS after start MB':>19}{heads} {'peak MB':>8} {'MB/hour':>8}")
    try:
        for n in sizes:
            first, at_marks, peak, slope = measure(n, minutes, marks, google)
            print(f"{n:>7} {first:>19.1f}" + "".join(f"{m:>10.1f}" for m in at_marks)
                  + f" {peak:>8.1f} {slope:>+8.1f}")
    finally:
        if google is not None:
            google.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
