"""How fast `keyward current` answers, beside the bare interpreter, measured in the same run.

Scripts call `keyward current` on every start, so its cost must stay close to `python3 -c pass`.
Runs alternate between the two commands so machine noise hits both alike; the ratio of medians is
the number to read. Target: under 1.5x.

    python bench/current_speed.py [--quick] [--runs N]
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few runs, for CI")
    parser.add_argument("--runs", type=int, default=None)
    args = parser.parse_args()
    runs = args.runs or (15 if args.quick else 100)

    base = Path(tempfile.mkdtemp(prefix="keyward-bench-"))
    run_dir = base / "run"
    run_dir.mkdir(mode=0o700)
    key_file = run_dir / "default.key"
    key_file.write_text("AQ." + secrets.token_urlsafe(40) + "\n")
    os.chmod(key_file, 0o600)
    env = {**os.environ, "KEYWARD_STATE_DIR": str(base / "state"), "KEYWARD_RUNTIME_DIR": str(run_dir),
           "XDG_CONFIG_HOME": str(base / "config")}
    env.pop("KEYWARD_CONFIG", None)

    bare = [sys.executable, "-c", "pass"]
    current = [sys.executable, "-m", "keyward", "current"]
    script = Path(sys.executable).with_name("keyward")
    commands = {"python3 -c pass": bare, "python -m keyward current": current}
    if script.exists():
        commands["keyward current (entry point)"] = [str(script), "current"]
    for argv in commands.values():  # warm the page cache and check it works
        timed(argv, env)
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, argv in commands.items():
            times[name].append(timed(argv, env))

    base_median = statistics.median(times["python3 -c pass"])
    print(f"{'command':<32} {'median ms':>10} {'p90 ms':>8} {'ratio':>6}")
    for name, values in times.items():
        values.sort()
        p90 = values[int(0.9 * (len(values) - 1))]
        median = statistics.median(values)
        print(f"{name:<32} {median * 1000:>10.1f} {p90 * 1000:>8.1f} {median / base_median:>6.2f}")
    print(f"({runs} alternating runs each; target: keyward current under 1.5x python3 -c pass)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
