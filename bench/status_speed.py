"""How long `keyward status --json` and any database command take as the installation grows.

For each N (projects in 4 pools, one active auth key each, three minutes of usage), in fresh
processes of the installed package, measured in the same run:

    python3 -c pass                        the interpreter alone (the reference)
    keyward pool list                      any command that opens the database (imports, schema check)
    keyward status --json, no daemon       the command builds the status itself
    keyward status --json, daemon          a real `keyward run` answers over its status socket
    keyward status (screen), daemon        the text screen, summarised past 30 projects
    keyward status --json --pretty         indented, for humans

Usage: python3 bench/status_speed.py [--quick] [--sizes 100,1000,10000] [--runs R]
`--quick` (for CI) uses N = 20 and 100. Targets: status --json < 300 ms at 1,000 projects either
way and < 1 s at 10,000; a database command < 250 ms at 1,000.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the bench helpers beside this file only

import _world  # noqa: E402


def measure(n: int, runs: int) -> dict[str, float]:
    root = _world.sandbox()
    config, env = _world.build(root, n, pools=4, sink="null")
    penv = {**os.environ, **env}
    penv.pop("PYTHONPATH", None)
    kw = _world.keyward_argv(config)
    out = {
        "python3 -c pass": _world.python_pass_ms(penv, runs),
        "keyward pool list": _world.process_ms(kw + ["pool", "list"], penv, runs),
        "status --json, no daemon": _world.process_ms(kw + ["status", "--json"], penv, runs),
    }
    daemon = _world.Daemon(config, penv, root)
    try:
        out["keyward run: start to READY=1 (s)"] = daemon.wait_ready(300)
        _world.process_ms(kw + ["status", "--json"], penv, 1)  # the first build after start
        out["status --json, daemon"] = _world.process_ms(kw + ["status", "--json"], penv, runs)
        out["status screen, daemon"] = _world.process_ms(kw + ["status", "--no-color"], penv, runs)
        out["status --json --pretty, daemon"] = _world.process_ms(kw + ["status", "--json", "--pretty"],
                                                                  penv, runs)
    finally:
        daemon.stop()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N = 20 and 100 (for CI)")
    parser.add_argument("--sizes", default=None, help="comma-separated N (default 100,1000,10000)")
    parser.add_argument("--runs", type=int, default=None)
    args = parser.parse_args()
    sizes = [int(x) for x in (args.sizes or ("20,100" if args.quick else "100,1000,10000")).split(",")]
    runs = args.runs or (3 if args.quick else 7)
    print(f"keyward from {_world.installed_from()}")
    print(f"machine: {_world.machine()}")
    results = {n: measure(n, runs) for n in sizes}
    rows = list(next(iter(results.values())))
    width = max(map(len, rows))
    print(f"{'median ms of ' + str(runs) + ' runs':<{width}}" + "".join(f"{'N=' + str(n):>10}" for n in sizes)
          + "  growth")
    for row in rows:
        values = [results[n][row] for n in sizes]
        print(f"{row:<{width}}" + "".join(f"{v:>10.2f}" if "(s)" in row else f"{v:>10.1f}" for v in values)
              + f"  {_world.growth(list(zip(sizes, values)))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
