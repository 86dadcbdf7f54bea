"""What a long-running program pays per call to follow the published key, in one process, side by
side: keyward.genai's check (KeyWatch: a stat of the key file and of the state file), the full
`client.current_key()` (configuration loaded and validated, file read), and reading the file
directly. The issue that asked for the helper measured 1.6 ms for `current_key()` before each call;
the helper's check must be far below that. Target: KeyWatch under 0.1 ms a call.

    python bench/key_check_speed.py [--quick] [--calls N]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path


def per_call(fn, calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - started) / calls


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few calls, for CI")
    parser.add_argument("--calls", type=int, default=None)
    args = parser.parse_args()
    calls = args.calls or (500 if args.quick else 5000)
    rounds = 3 if args.quick else 7

    base = Path(tempfile.mkdtemp(prefix="keyward-bench-"))
    run_dir = base / "run"
    run_dir.mkdir(mode=0o700)
    key_file = run_dir / "default.key"
    key_file.write_text("AQ." + secrets.token_urlsafe(40) + "\n")
    (run_dir / "default.state.json").write_text(json.dumps({"pool": "default", "key_id": "k1",
                                                             "all_exhausted": False, "published": True}))
    os.environ.update({"KEYWARD_STATE_DIR": str(base / "state"), "KEYWARD_RUNTIME_DIR": str(run_dir),
                       "XDG_CONFIG_HOME": str(base / "config")})
    os.environ.pop("KEYWARD_CONFIG", None)

    from keyward import client
    from keyward.keywatch import KeyWatch

    watch = KeyWatch("default")

    def helper_check() -> None:  # what keyward.genai.Client does before each call
        watch.state()
        watch.key()

    candidates = {
        "open + read the key file": lambda: key_file.read_text(),
        "KeyWatch.key() + .state() (genai helper)": helper_check,
        "client.current_key()": lambda: client.current_key("default"),
    }
    results: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(rounds):  # alternate so machine noise hits every candidate alike
        for name, fn in candidates.items():
            results[name].append(per_call(fn, calls if "current_key" not in name else max(50, calls // 20)))
    print(f"{'per call':<44} {'median µs':>10} {'vs current_key':>15}")
    slow = statistics.median(results["client.current_key()"])
    for name, values in results.items():
        median = statistics.median(values)
        print(f"{name:<44} {median * 1e6:>10.1f} {median / slow:>15.3f}")
    print(f"({rounds} alternating rounds; target: the helper's check under 100 µs a call)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
