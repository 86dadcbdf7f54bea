"""How long from `kill -9` of the leading daemon until another daemon leads.

Three daemons (each with its own state and runtime directories, as on three hosts) share one
PostgreSQL database and one emulator. Each round finds the leader from the lease row, SIGKILLs it,
times until the lease row names another live daemon, and starts the killed one again. The promise:
a new leader within 2 × daemon.lease (7 s by default, so within 15 s).

    python bench/failover.py [--quick] [--kills 10] [--lease 7s]
        [--database postgresql+psycopg://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
MODEL = "gemini-2.5-flash"
PROJECT, NUMBER = "bench-failover-1", "330000000001"


def config_text(base: Path, name: str, database: str, lease: str) -> str:
    return f"""
database = "{database}"
state_dir = "{base / name / 'state'}"
runtime_dir = "{base / name / 'run'}"

[selection]
interval = "1s"

[daemon]
rotation_check = "5s"
heartbeat = "1s"
jitter = "0s"
lease = "{lease}"
ingest_socket = ""

[pools.default]
model = "{MODEL}"
sinks = [{{ type = "file", path = "{base / name / 'run' / 'default.key'}" }}]

[projects.{PROJECT}]
number = "{NUMBER}"
managed = true
service_account = "keyward@{PROJECT}.iam.gserviceaccount.com"
"""


class Daemons:
    def __init__(self, base: Path, database: str, lease: str, emulator: str):
        self.base, self.database = base, database
        self.configs = {}
        for i in range(3):
            path = base / f"h{i}" / "keyward.toml"
            path.parent.mkdir(parents=True)
            path.write_text(config_text(base, f"h{i}", database, lease))
            self.configs[f"h{i}"] = path
        self.env = {**os.environ, "KEYWARD_GOOGLE_EMULATOR_HOST": emulator,
                    "KEYWARD_STATE_DIR": "", "KEYWARD_RUNTIME_DIR": ""}
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str) -> None:
        log = open(self.configs[name].parent / "daemon.log", "ab")
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "keyward", "--config", str(self.configs[name]), "run"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=self.env)
        log.close()

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()


def leader_pid(engine) -> int | None:
    """The pid of the daemon holding an unexpired leader lease, or None."""
    from sqlalchemy import text
    from sqlalchemy.exc import ProgrammingError

    try:
        return _leader_pid(engine, text)
    except ProgrammingError:  # the first daemon has not created the schema yet
        return None


def _leader_pid(engine, text) -> int | None:
    with engine.connect() as conn:
        row = conn.execute(text("SELECT holder FROM leases WHERE name = 'leader' "
                                "AND expires_at > now()")).first()
        if row is None:
            return None
        meta = conn.execute(text("SELECT value FROM meta WHERE name = :n"),
                            {"n": "instance." + row[0].split(":", 1)[0]}).first()
    return json.loads(meta[0]).get("pid") if meta else None


def wait(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.02)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 kills (for CI)")
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--lease", default="7s")
    parser.add_argument("--database", default=os.environ.get(
        "KEYWARD_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test"))
    args = parser.parse_args()
    kills = 3 if args.quick else args.kills

    from sqlalchemy import create_engine, text

    from keyward.config.durations import parse_duration
    from keyward.emulator import Emulator

    lease_s = parse_duration(args.lease).total_seconds()
    schema = f"kw_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(args.database)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = f"{args.database}?options=-csearch_path%3D{schema}"
    engine = create_engine(url)
    base = Path(tempfile.mkdtemp(prefix="kw-failover-"))
    emu = Emulator().start()
    emu.add_project(PROJECT, NUMBER)
    daemons = Daemons(base, url, args.lease, emu.address)
    times: list[float] = []
    try:
        for name in daemons.configs:
            daemons.start(name)
        wait(lambda: leader_pid(engine), 60, "a first leader")
        for _ in range(kills):
            pid = wait(lambda: leader_pid(engine), 60, "a leader")
            name = next(n for n, p in daemons.procs.items() if p.pid == pid)
            os.kill(pid, signal.SIGKILL)
            killed_at = time.monotonic()
            daemons.procs[name].wait(10)
            wait(lambda: (leader_pid(engine) or pid) != pid, 4 * lease_s + 10, "a new leader")
            times.append(time.monotonic() - killed_at)
            daemons.start(name)
            # let the restarted daemon join before the next kill
            time.sleep(1.0)
    finally:
        daemons.stop()
        emu.stop()
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
        shutil.rmtree(base, ignore_errors=True)

    print(f"failover after kill -9 of the leader: 3 daemons, one PostgreSQL, lease {args.lease}")
    print(f"{'kills':>6} {'median s':>9} {'max s':>7} {'promise s':>10}")
    print(f"{len(times):>6} {statistics.median(times):>9.2f} {max(times):>7.2f} {2 * lease_s:>10.1f}")
    return 0 if max(times) <= 2 * lease_s else 1


if __name__ == "__main__":
    sys.exit(main())
