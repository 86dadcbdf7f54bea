"""Several hosts on one PostgreSQL database: three real daemons (own state and runtime dirs, one
emulator, one database) rotate keys whose age is seconds, while the leader is SIGKILLed or its
database connections terminated at random points. Afterwards no key is orphaned at Google, no
rotation was promoted twice, every host publishes its pool's current key, and every usage report
sent to any host was counted once.

KEYWARD_TEST_ROTATIONS sets how many completed rotations the run waits for (default 20).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import tempfile
import time
from collections import Counter
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.exc import ProgrammingError

from support.daemon_harness import DaemonProcess, wait_for
from support.processes import state

MODEL = "gemini-2.5-flash"
PROJECTS = [(f"hosts-proj-{i}", f"31000000000{i}") for i in range(1, 7)]
ROTATIONS = int(os.environ.get("KEYWARD_TEST_ROTATIONS", "20"))
LEASE = 2.0
SELECTION = 1.0  # selection.interval in the hosts' configs


def host_config(base: Path, sock_dir: Path, name: str, database: str) -> Path:
    run = base / name / "run"
    text_ = f"""
database = "{database}&application_name=kw-{name}"
state_dir = "{base / name / 'state'}"
runtime_dir = "{run}"

[rotation]
min_age = "10s"
max_age = "14s"
grace = "3s"
retry_budget = "5s"
operation_timeout = "10s"
retry_backoff = "1s"
max_backoff = "2s"

[usage]
poll_interval = "10s"

[selection]
interval = "1s"

[daemon]
rotation_check = "1s"
heartbeat = "1s"
jitter = "0s"
lease = "{LEASE:g}s"
ingest_socket = "{sock_dir / (name + '.sock')}"

[pools.default]
model = "{MODEL}"

[[pools.default.sinks]]
type = "file"
path = "{run / 'default.key'}"
"""
    for pid, number in PROJECTS:
        text_ += f"""
[projects.{pid}]
number = "{number}"
managed = true
service_account = "keyward@{pid}.iam.gserviceaccount.com"
"""
    path = base / name / "keyward.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text_)
    return path


class Hosts:
    """Three daemons and what the test needs to find, kill and restart the leader."""

    def __init__(self, base: Path, pg_url: str, env: dict[str, str]):
        self.sock_dir = Path(tempfile.mkdtemp(prefix="kwh"))  # Unix socket paths must be short
        self.configs = {f"h{i}": host_config(base, self.sock_dir, f"h{i}", pg_url) for i in range(3)}
        self.env = env
        self.procs: dict[str, DaemonProcess] = {}
        self.engine = create_engine(pg_url)

    def start(self, name: str) -> None:
        self.procs[name] = DaemonProcess(self.configs[name], self.env)

    def leader(self) -> tuple[str, int] | None:
        """Return (host name, pid) of the daemon holding a live leader lease, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(text(
                "SELECT l.holder FROM leases l WHERE l.name = 'leader' AND l.expires_at > now()")).first()
        if row is None:
            return None
        for name, proc in self.procs.items():
            if proc.proc.poll() is None and row[0] == self._instance_of(proc.proc.pid):
                return name, proc.proc.pid
        return None

    def _instance_of(self, pid: int) -> str | None:
        with self.engine.connect() as conn:
            for (value,) in conn.execute(text("SELECT value FROM meta WHERE name LIKE 'instance.%'")):
                info = json.loads(value)
                if info.get("pid") == pid and info.get("kind") == "daemon" and not info.get("stopped_at"):
                    return info["id"]
        return None

    def terminate_backends(self, name: str) -> int:
        with self.engine.connect() as conn:
            killed = conn.execute(text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = :app"), {"app": f"kw-{name}"}).scalar()
            conn.commit()
        return int(killed or 0)

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.stop()
        self.engine.dispose()
        shutil.rmtree(self.sock_dir, ignore_errors=True)


def count(engine, sql: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(sql)).scalar() or 0)


def test_three_daemons_when_leader_killed_repeatedly_converge_without_orphans(tmp_path, pg_url, kw_env):
    from keyward.emulator import Emulator
    from keyward.usage import reporter

    emu = Emulator().start()
    emu.operation_polls, emu.operation_seconds = 1, 0.3
    for pid, number in PROJECTS:
        emu.add_project(pid, number)
    env = {**kw_env, "KEYWARD_GOOGLE_EMULATOR_HOST": emu.address}
    env.update(KEYWARD_STATE_DIR="", KEYWARD_RUNTIME_DIR="")  # each host's config names its own
    hosts = Hosts(tmp_path, pg_url, env)
    rng = random.Random(int(os.environ.get("KEYWARD_TEST_SEED", "8")))
    sent = Counter()
    kills = {"sigkill": 0, "backend": 0}
    try:
        for name in hosts.configs:  # all at once, on an empty database
            hosts.start(name)
        for name, proc in hosts.procs.items():
            wait_for(lambda: "daemon ready" in proc.log or proc.proc.poll() is not None, 90, f"{name} ready")
            assert proc.proc.poll() is None, proc.log
        # READY comes before the first pass; reports name the pool, so wait for its first key.
        wait_for(lambda: count(hosts.engine, "SELECT count(*) FROM pools WHERE current_key_id IS NOT NULL"),
                 90, "the pool's first key")
        deadline = time.monotonic() + 420
        next_fault = time.monotonic() + rng.uniform(3, 8)
        while count(hosts.engine, "SELECT count(*) FROM rotations WHERE outcome = 'done'") < ROTATIONS:
            assert time.monotonic() < deadline, "the rotations did not complete in time"
            for name, config in hosts.configs.items():  # every host accepts reports
                reporter.send_usage(pool="default", model=MODEL, requests=1, config_path=str(config))
                sent[name] += 1
            if time.monotonic() >= next_fault:
                found = hosts.leader()
                if found is not None:
                    name, pid = found
                    if kills["sigkill"] <= kills["backend"]:  # alternate, at random moments
                        os.kill(pid, signal.SIGKILL)
                        hosts.procs[name].wait(10)
                        kills["sigkill"] += 1
                        hosts.start(name)
                    elif hosts.terminate_backends(name):
                        kills["backend"] += 1
                next_fault = time.monotonic() + rng.uniform(3, 8)
            time.sleep(0.2)

        # A new leader takes over within 2 × the lease after the last kill; each host then
        # publishes its pool's current key within 2 × the selection interval (plus start-up).
        wait_for(hosts.leader, 2 * LEASE + 5, "a leader")
        for name, config in hosts.configs.items():
            proc = hosts.procs[name]
            wait_for(lambda: "daemon ready" in proc.log, 60, f"{name} (restarted) to be ready")
            published = config.parent / "run" / "default.key"
            # Rotations go on meanwhile, so the current key keeps moving: allow many selection passes.
            wait_for(lambda: _published_matches_current(hosts.engine, published), 15 * SELECTION,
                     f"{name} to publish the pool's current key")
        # The shared heartbeat row is the leader's alone: status does not flip between hosts, and
        # names a new leader within a heartbeat of its election (it beats at once on leading).
        def beat_is_the_leaders() -> bool:
            with hosts.engine.connect() as conn:
                beat = json.loads(conn.execute(text("SELECT value FROM meta WHERE name = 'heartbeat'")).scalar())
            leader = hosts.leader()
            return leader is not None and beat["pid"] == leader[1] and beat["stopped_at"] is None

        wait_for(beat_is_the_leaders, 5 * LEASE, "the heartbeat row to name the leader")
    finally:
        hosts.stop()
        reporter.close()

    try:
        assert kills["sigkill"] >= 1 and kills["backend"] >= 1, kills
        engine = create_engine(pg_url)
        with engine.connect() as conn:
            rotations = conn.execute(text(
                "SELECT new_key_id, step, outcome, finished_at FROM rotations")).all()
            keys = {r[0]: r[1] for r in conn.execute(text("SELECT key_id, state FROM keys"))}
            promoted = Counter(r[0] for r in conn.execute(text(
                "SELECT key_id FROM events WHERE kind = 'rotation.promoted'")))
            active = Counter(r[0] for r in conn.execute(text(
                "SELECT p.project_id FROM keys k JOIN projects p ON p.id = k.project_pk "
                "WHERE k.state = 'active'")))
            reported = conn.execute(text(
                "SELECT coalesce(sum(requests), 0) FROM usage_minutes WHERE source = 'local'")).scalar()
        engine.dispose()
        at_google = [k for pid, _ in PROJECTS for k in emu.keys(pid, show_deleted=True)]
        ids_at_google = {k["name"].rsplit("/", 1)[-1] for k in at_google}
        live_at_google = {k["name"].rsplit("/", 1)[-1] for k in at_google if not k.get("deleteTime")}
        promoted_rows = {r[0] for r in rotations if r[1] in ("promoted", "done")}
        failed_deleted = {r[0] for r in rotations if r[2] == "failed" and r[0] in ids_at_google
                          and r[0] not in live_at_google}
        open_with_key = {r[0] for r in rotations if r[3] is None and r[0] in ids_at_google}

        assert max(promoted.values()) == 1, f"double promotions: {promoted.most_common(3)}"
        assert all(n == 1 for n in active.values()) and len(active) == len(PROJECTS), active
        assert ids_at_google == promoted_rows | failed_deleted | open_with_key, \
            "every key created at Google is a promoted rotation, a deleted failed one or in flight"
        assert live_at_google <= set(keys) | open_with_key, \
            f"keys live at Google keyward does not know: {live_at_google - set(keys) - open_with_key}"
        assert int(reported) == sum(sent.values()), (reported, sent)
    finally:
        emu.stop()


def _published_matches_current(engine, published: Path) -> bool:
    from keyward.sinks.file import read_published_file
    from keyward.storage.store import fingerprint

    on_file = read_published_file(published)
    if on_file is None:
        return False
    with engine.connect() as conn:
        row = conn.execute(text(
            "SELECT k.fingerprint FROM pools p JOIN keys k ON k.key_id = p.current_key_id "
            "WHERE p.name = 'default'")).first()
    return row is not None and row[0] == fingerprint(on_file)


def test_leader_paused_mid_rotation_is_fenced_off_after_another_takes_over(tmp_path, pg_url, kw_env):
    """A leader stopped (SIGSTOP) between deciding to promote and writing it: another daemon leads,
    finishes the rotation; when the first one continues, its write is refused by the fence."""
    from keyward.emulator import Emulator

    emu = Emulator().start()
    emu.operation_polls, emu.operation_seconds = 0, 0
    for pid, number in PROJECTS[:1]:
        emu.add_project(pid, number)
    env = {**kw_env, "KEYWARD_GOOGLE_EMULATOR_HOST": emu.address, "KEYWARD_STATE_DIR": "",
           "KEYWARD_RUNTIME_DIR": ""}
    hosts = Hosts(tmp_path, pg_url, env)
    for config in hosts.configs.values():  # one project is enough here
        text_ = config.read_text()
        config.write_text(text_[:text_.index("[projects.")] + text_[text_.index("[projects."):].split(
            "\n[projects.", 1)[0] + "\n")
    try:
        hosts.env = {**env, "KEYWARD_TEST_PAUSE_AT": "promoting"}
        hosts.start("h0")
        paused = hosts.procs["h0"]
        wait_for(lambda: state(paused.proc.pid) == "T", 60, "h0 to pause before promoting")
        hosts.env = env
        hosts.start("h1")
        follower = hosts.procs["h1"]
        wait_for(lambda: count(hosts.engine, "SELECT count(*) FROM rotations WHERE outcome = 'done'") >= 1,
                 60, "h1 to take over and finish the rotation")
        os.kill(paused.proc.pid, signal.SIGCONT)
        wait_for(lambda: "no longer holds the" in paused.log, 30, "h0's write to be refused by the fence")
        with hosts.engine.connect() as conn:
            promoted = [r[0] for r in conn.execute(text(
                "SELECT key_id FROM events WHERE kind = 'rotation.promoted'"))]
        assert len(promoted) == len(set(promoted)) == 1
        assert follower.proc.poll() is None
    finally:
        hosts.stop()
        emu.stop()


def test_leader_stopped_cleanly_the_next_leader_beats_at_once_not_a_heartbeat_later(tmp_path, pg_url, kw_env):
    """The shared heartbeat row says "stopped" once the leader stops; the daemon that takes over
    must overwrite it as it starts leading, or status calls the service down for a whole
    `daemon.heartbeat` (60 s here) while another daemon runs it."""
    from keyward.emulator import Emulator

    emu = Emulator().start()
    for pid, number in PROJECTS[:1]:
        emu.add_project(pid, number)
    env = {**kw_env, "KEYWARD_GOOGLE_EMULATOR_HOST": emu.address, "KEYWARD_STATE_DIR": "",
           "KEYWARD_RUNTIME_DIR": ""}
    hosts = Hosts(tmp_path, pg_url, env)
    for config in hosts.configs.values():
        config.write_text(config.read_text().replace('heartbeat = "1s"', 'heartbeat = "60s"'))

    def beat() -> dict:
        try:
            with hosts.engine.connect() as conn:
                value = conn.execute(text("SELECT value FROM meta WHERE name = 'heartbeat'")).scalar()
        except ProgrammingError:  # the first daemon has not created the schema yet
            return {}
        return json.loads(value) if value else {}

    try:
        hosts.start("h0")
        first = hosts.procs["h0"]
        wait_for(lambda: beat().get("pid") == first.proc.pid, 60, "h0 to lead and beat")
        hosts.start("h1")
        second = hosts.procs["h1"]
        wait_for(lambda: "daemon ready" in second.log, 60, "h1 ready")
        first.stop()  # SIGTERM: the last beat says stopped, and the lease is handed over
        row = wait_for(lambda: (lambda b: b if b.get("pid") == second.proc.pid else None)(beat()),
                       2 * LEASE + 5, "h1 to take over and beat at once")
        assert row["stopped_at"] is None and second.proc.poll() is None
    finally:
        hosts.stop()
        emu.stop()
