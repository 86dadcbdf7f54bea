"""What sealing key strings at rest costs: rotation, publishing and `keyward current`, with and without.

Two state directories are built side by side, one without a master key (plain text, as before) and
one with a master key file (every key string sealed). Each run alternates between them, so machine
noise hits both alike; the ratio of medians is the number to read.

- rotation: one forced rotation of a managed project against the local emulator over real HTTP
  (create, wait for the operation, read the key string, verify it with a Gemini call, promote);
- publish: a publish pass right after it (selection opens the new key and writes the secret file);
- open: a publish pass with nothing to change (selection still opens the current key);
- current: `keyward current` in a fresh process, which reads the published file, not the database.

    python bench/sealing_cost.py [--quick] [--runs N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT, NUMBER = "bench-proj-1", "100000000001"
MODEL = "gemini-2.5-flash"


def _config(base: Path) -> Path:
    path = base / "keyward.toml"
    path.write_text(f"""
state_dir = "{base / 'state'}"
runtime_dir = "{base / 'run'}"

[rotation]
min_age = "1h"
max_age = "2h"
grace = "0s"

[pools.default]
model = "{MODEL}"

[[pools.default.sinks]]
type = "file"
path = "{base / 'run' / 'default.key'}"

[projects.{PROJECT}]
number = "{NUMBER}"
managed = true
service_account = "keyward@{PROJECT}.iam.gserviceaccount.com"
""")
    return path


def _context(config: Path):
    from keyward.config import load_config
    from keyward.context import Context

    return Context(load_config(config, env={}), env={})


def _timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def _seal_open_ms(rounds: int = 2000) -> float:
    import secrets

    from keyward.sealing import MasterKey, Sealer

    sealer = Sealer.with_keys(MasterKey.generate("bench"))
    secret, aad = "AQ." + secrets.token_urlsafe(40), b"keys.secret\0bench\x001"
    started = time.perf_counter()
    for _ in range(rounds):
        sealer.open(sealer.seal(secret, aad), aad, "bench")
    return (time.perf_counter() - started) / rounds * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few runs, for CI")
    parser.add_argument("--runs", type=int, default=None)
    args = parser.parse_args()
    runs = args.runs or (5 if args.quick else 40)

    from keyward import master_key
    from keyward.emulator import Emulator
    from keyward.publishing.service import publish_pools
    from keyward.rotation.deps import Deps
    from keyward.rotation.service import rotate_project

    emu = Emulator().start()
    emu.add_project(PROJECT, NUMBER)
    os.environ["KEYWARD_GOOGLE_EMULATOR_HOST"] = emu.address
    for name in ("KEYWARD_CONFIG", "KEYWARD_DATABASE_URL", "CREDENTIALS_DIRECTORY", "DBUS_SESSION_BUS_ADDRESS",
                 "PYTHON_KEYRING_BACKEND"):
        os.environ.pop(name, None)
    deps = Deps(sleep=lambda _s: None, rng=lambda: 0.5)

    modes: dict[str, dict] = {}
    for mode in ("plain", "sealed"):
        base = Path(tempfile.mkdtemp(prefix=f"keyward-bench-{mode}-"))
        config = _config(base)
        if mode == "sealed":
            master_key.init_file(base / "master.key", add=False)
        ctx = _context(config)
        rotate_project(ctx, PROJECT, deps=deps)
        publish_pools(ctx, trigger="bench")
        env = {**os.environ, "KEYWARD_CONFIG": str(config)}
        modes[mode] = {"ctx": ctx, "env": env, "times": {k: [] for k in ("rotation", "publish", "open", "current")}}
    assert modes["sealed"]["ctx"].store.sealer.primary is not None
    bare: list[float] = []
    current = [sys.executable, "-m", "keyward", "current"]
    for mode in modes.values():  # warm the page cache and check it works
        subprocess.run(current, env=mode["env"], check=True, stdout=subprocess.DEVNULL)

    for run in range(runs):
        bare.append(_timed(lambda: subprocess.run([sys.executable, "-c", "pass"], check=True)))
        order = list(modes.values())
        for mode in order if run % 2 else reversed(order):  # neither mode always goes first
            ctx, times = mode["ctx"], mode["times"]
            times["rotation"].append(_timed(lambda: rotate_project(ctx, PROJECT, force=True, deps=deps)))
            times["publish"].append(_timed(lambda: publish_pools(ctx, trigger="bench")))
            times["open"].append(_timed(lambda: publish_pools(ctx, trigger="bench")))
            times["current"].append(_timed(lambda: subprocess.run(current, env=mode["env"], check=True,
                                                                   stdout=subprocess.DEVNULL)))
    emu.stop()

    print(f"{'measure':<34} {'plain ms':>9} {'sealed ms':>10} {'ratio':>6}")
    labels = {"rotation": "rotation (emulator, real HTTP)", "publish": "publish pass after a rotation",
              "open": "publish pass, nothing to change", "current": "keyward current (fresh process)"}
    for name, label in labels.items():
        plain = statistics.median(modes["plain"]["times"][name])
        sealed = statistics.median(modes["sealed"]["times"][name])
        print(f"{label:<34} {plain * 1000:>9.2f} {sealed * 1000:>10.2f} {sealed / plain:>6.2f}")
    print(f"{'python3 -c pass':<34} {statistics.median(bare) * 1000:>9.2f}")
    print(f"{'seal + open one key string':<34} {'':>9} {_seal_open_ms():>10.4f}")
    print(f"({runs} alternating runs each; sealing must not change `keyward current`)")
    for mode in modes.values():
        mode["ctx"].close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
