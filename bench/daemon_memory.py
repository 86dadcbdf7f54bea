"""How much memory an idle `keyward run` holds as the installation grows, and whether it grows.

For each N (projects in 4 pools, one key each, Monitoring off so nothing calls Google) it starts a
real daemon, waits for READY=1 and the end of its first pass, then samples its RSS (from /proc)
for `--minutes` while it runs its timers idle. The reference, in the same run, is a bare
interpreter's RSS. Target: < 80 MB at 1,000 projects, flat while idle.

    python bench/daemon_memory.py [--quick] [--sizes 100,1000,10000] [--minutes 3]
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


def measure(n: int, minutes: float) -> tuple[float, float, float]:
    root = _world.sandbox()
    config, env = _world.build(root, n, pools=4, sink="null")
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
        peak = first
        end = time.monotonic() + minutes * 60
        while time.monotonic() < end:
            time.sleep(5)
            peak = max(peak, rss_mb(daemon.proc.pid))
        return first, rss_mb(daemon.proc.pid), peak
    finally:
        daemon.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N = 20 and 100, 20 s each (for CI)")
    parser.add_argument("--sizes", default=None, help="comma-separated N (default 100,1000,10000)")
    parser.add_argument("--minutes", type=float, default=None)
    args = parser.parse_args()
    sizes = [int(x) for x in (args.sizes or ("20,100" if args.quick else "100,1000,10000")).split(",")]
    minutes = args.minutes or (1 / 3 if args.quick else 3)
    print(f"keyward from {_world.installed_from()}")
    print(f"machine: {_world.machine()}; bare interpreter RSS {bare_mb():.1f} MB (same run)")
    print(f"{'N':>7} {'RSS after start MB':>19} {f'after {minutes:.1f} min idle':>20} {'peak MB':>8}")
    for n in sizes:
        first, last, peak = measure(n, minutes)
        print(f"{n:>7} {first:>19.1f} {last:>20.1f} {peak:>8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
