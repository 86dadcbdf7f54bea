"""A big keyward installation for the benchmarks, built fast, and helpers to time real processes.

Every benchmark measures the installed package: nothing here puts the source tree on `sys.path`, and
processes run `sys.executable -m keyward` (or the `keyward` script beside it). Run them from a
virtualenv where keyward is installed (`pip install .`, not `-e`, for start-up numbers users see).
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

MODEL = "gemini-2.5-flash"


def installed_from() -> str:
    """Where `import keyward` comes from, and whether that is an editable (source tree) install."""
    import keyward

    where = os.path.dirname(keyward.__file__)
    return where + ("" if "site-packages" in where else "  (editable/source install: start-up numbers flatter less)")


def machine() -> str:
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {sys.version.split()[0]}"


def build(root: Path, projects: int, pools: int = 1, *, minutes: int = 3, sink: str = "file",
          monitoring: bool = False) -> tuple[Path, dict[str, str]]:
    """Write a config and a SQLite database with `projects` projects spread over `pools` pools.

    Each project has config-free limits, one active auth key and `minutes` minutes of usage; the
    pools publish to `sink` ("file" or "null"). Return (config path, environment for keyward).
    """
    from sqlalchemy import insert

    from keyward.config import load_config
    from keyward.context import Context
    from keyward.quota.windows import minute_floor, pacific_date
    from keyward.storage import store as q
    from keyward.storage.models import UsageDay, UsageMinute

    run = root / "run"
    env = {"HOME": str(root), "KEYWARD_STATE_DIR": str(root / "state"), "KEYWARD_RUNTIME_DIR": str(run),
           "XDG_CONFIG_HOME": str(root / "xdg")}
    text = (f'[usage]\nmonitoring = {"true" if monitoring else "false"}\n'
            '[daemon]\nheartbeat = "5s"\ningest_socket = ""\n')
    for i in range(pools):
        text += f'[pools.p{i}]\nmodel = "{MODEL}"\n[[pools.p{i}.sinks]]\ntype = "{sink}"\n'
        if sink == "file":
            text += f'path = "{run / f"p{i}.key"}"\n'
    config = root / "keyward.toml"
    config.write_text(text, encoding="utf-8")
    now = datetime.now(timezone.utc)
    ctx = Context(load_config(config, env=env), env=env)
    pks = []
    with ctx.store.write() as s:
        pool_rows = [q.get_pool(s, f"p{i}") for i in range(pools)]
        for n in range(projects):
            project = q.upsert_project(s, f"bench-project-{n:05d}", pool_rows[n % pools])
            q.set_limit(s, project, MODEL, rpm=60, tpm=1_000_000, rpd=10_000, source="cli")
            q.add_key(s, project, key_id=f"kw-bench-{n:05d}", secret="AQ." + secrets.token_urlsafe(40),
                      kind="auth", state="active", origin="manual", now=now - timedelta(days=3),
                      promoted_at=now - timedelta(days=3), rotate_after=now + timedelta(days=12))
            pks.append(project.id)
    first = minute_floor(now) - timedelta(minutes=minutes - 1)
    with ctx.store.engine.begin() as conn:
        if minutes:
            conn.execute(insert(UsageMinute.__table__), [
                {"project_pk": pk, "model": MODEL, "minute": first + timedelta(minutes=m), "source": "local",
                 "requests": (pk * 7 + m) % 50, "input_tokens": 100 * ((pk + m) % 50), "output_tokens": 0}
                for pk in pks for m in range(minutes)])
        conn.execute(insert(UsageDay.__table__), [
            {"project_pk": pk, "model": MODEL, "day": pacific_date(now), "source": src,
             "requests": (pk * 13) % 5000, "input_tokens": 50_000, "output_tokens": 0}
            for pk in pks for src in ("local", "effective")])
    ctx.close()
    return config, env


def sandbox(prefix: str = "keyward-bench-") -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))


def keyward_argv(config: Path) -> list[str]:
    return [sys.executable, "-m", "keyward", "--config", str(config)]


def process_ms(argv: list[str], env: dict[str, str], runs: int) -> float:
    """Median wall time of `runs` runs of `argv` (each must exit 0), in ms."""
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        proc = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        samples.append((time.perf_counter() - t0) * 1000)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(argv[-3:])} failed: {proc.stderr.decode()[-500:]}")
    return statistics.median(samples)


def python_pass_ms(env: dict[str, str] | None = None, runs: int = 5) -> float:
    return process_ms([sys.executable, "-c", "pass"], env or dict(os.environ), runs)


class Daemon:
    """`keyward run` as a real process, with a notify socket to time READY=1."""

    def __init__(self, config: Path, env: dict[str, str], root: Path):
        self.notify_path = str(root / "n.sock")
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(self.notify_path)
        self.log = open(root / "daemon.log", "wb")
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(keyward_argv(config) + ["run"], env={**env, "NOTIFY_SOCKET": self.notify_path},
                                     stdout=self.log, stderr=subprocess.STDOUT)
        self.ready_s: float | None = None
        self.root = root

    def wait_ready(self, timeout: float) -> float:
        """Seconds from start to READY=1; raise SystemExit when it never comes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.notify.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                data = self.notify.recv(4096).decode()
            except socket.timeout:
                break
            if "READY=1" in data.splitlines():
                self.ready_s = time.perf_counter() - self.started
                return self.ready_s
        self.stop()
        raise SystemExit(f"no READY=1 within {timeout:.0f}s; log: {(self.root / 'daemon.log').read_text()[-800:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.notify.close()
        self.log.close()


def growth(rows: list[tuple[int, float]]) -> str:
    """How a measure grows with N: the ratio from the smallest to the largest N against N's ratio."""
    if len(rows) < 2 or rows[0][1] <= 0:
        return "-"
    (n0, t0), (n1, t1) = rows[0], rows[-1]
    return f"x{t1 / t0:.1f} for x{n1 / n0:.0f} projects"


def dumps(obj) -> str:
    return json.dumps(obj)
