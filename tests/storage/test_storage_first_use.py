"""Concurrent first commands on a brand-new SQLite file: every one creates or waits, none fails.

The race lives in the first write to the file: the process that switches a new file to WAL
writes its header in a rollback-journal transaction, and SQLite answers another process's
`PRAGMA journal_mode = WAL` during that transaction with "database is locked" at once, without
waiting on the busy timeout. The window is a millisecond wide, so the engine test lines many
processes up behind a barrier over many fresh files; the CLI test runs the commands a user starts.
"""

from __future__ import annotations

import os
import queue
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

from support.daemon_harness import DaemonProcess, wait_for

KEYWARD = str(Path(sys.executable).parent / "keyward")

# Forks WORKERS processes per fresh file; each opens keyward's engine the moment the barrier
# falls and checks the file is in WAL. Forked from a fresh interpreter (never from pytest's).
FIRST_CONNECTS = textwrap.dedent("""
    import multiprocessing, os, sys
    from keyward.storage.engine import make_engine

    def connect(url, barrier, results):
        barrier.wait()
        try:
            engine = make_engine(url)
            with engine.connect() as conn:
                mode = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
            engine.dispose()
            results.put(None if mode == "wal" else f"journal mode {mode}")
        except Exception as exc:
            results.put(f"{exc.__class__.__name__}: {str(exc).splitlines()[0]}")

    if __name__ == "__main__":
        ctx = multiprocessing.get_context("fork")
        base, files, workers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
        failures = []
        for n in range(files):
            url = f"sqlite:///{base}/{n}/keyward.db"
            barrier, results = ctx.Barrier(workers), ctx.Queue()
            procs = [ctx.Process(target=connect, args=(url, barrier, results)) for _ in range(workers)]
            for p in procs:
                p.start()
            failures += [r for r in (results.get(timeout=120) for _ in procs) if r]
            for p in procs:
                p.join()
        print("\\n".join(failures))
        sys.exit(1 if failures else 0)
""")


def test_first_connects_when_many_processes_open_new_files_at_once_all_succeed(tmp_path):
    result = subprocess.run([sys.executable, "-c", FIRST_CONNECTS, str(tmp_path), "24", "8"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_first_command_when_another_process_is_writing_the_new_file_waits_and_succeeds(tmp_path):
    config = _config(tmp_path)
    db = tmp_path / "new" / "keyward.db"
    db.parent.mkdir(mode=0o700)
    db.touch(mode=0o600)
    # Another process midway through its first write: a write lock on a file not yet in WAL.
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    proc = subprocess.Popen([KEYWARD, "--debug", "--config", str(config), "pool", "list"], env=_env(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=lambda: [*map(lines.put, proc.stderr), lines.put(None)], daemon=True).start()
    seen: list[str] = []
    try:
        while not any("waiting to switch it to WAL" in line for line in seen):
            line = lines.get(timeout=60)  # the deadline; None: the command ended without waiting
            assert line is not None, "the command never waited for the lock:\n" + "".join(seen)
            seen.append(line)
    finally:
        holder.execute("COMMIT")
        holder.close()
    with proc.stdout:
        out = proc.stdout.read()
    rc = proc.wait(60)
    wait_for(lambda: None in lines.queue, 60, "the command's stderr to end")
    proc.stderr.close()
    assert rc == 0, "".join(seen) + "".join(filter(None, lines.queue))
    assert "default" in out


def _env(base: Path) -> dict[str, str]:
    env = {**os.environ, "KEYWARD_STATE_DIR": str(base / "state"), "KEYWARD_RUNTIME_DIR": str(base / "run"),
           "HOME": str(base)}
    env.pop("KEYWARD_GOOGLE_EMULATOR_HOST", None)
    return env


def _config(base: Path) -> Path:
    config = base / "keyward.toml"
    config.write_text(textwrap.dedent(f"""\
        database = "sqlite:///{base}/new/keyward.db"
        state_dir = "{base / 'state'}"
        runtime_dir = "{base / 'run'}"

        [daemon]
        ingest_socket = ""

        [pools.default]
        model = "gemini-2.5-flash"

        [[pools.default.sinks]]
        type = "file"
        path = "{base / 'run' / 'default.key'}"

        [projects.first-use-1]
        number = "100000000001"
        managed = false

        [projects.first-use-1.limits."gemini-2.5-flash"]
        rpm = 10
        tpm = 1000
        rpd = 100
        """))
    return config


def test_concurrent_first_commands_and_daemon_on_a_new_sqlite_file_all_succeed(tmp_path):
    config = _config(tmp_path)
    env = _env(tmp_path)
    commands = [["status"], ["pool", "list"], ["config", "validate"], ["db", "status"], ["current", "default"],
                ["report", "--pool", "default", "--key-id", "none"], ["project", "list"], ["key", "list"]]
    daemon = DaemonProcess(config, env)
    procs = [subprocess.Popen([KEYWARD, "--config", str(config), *cmd], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for cmd in commands]
    try:
        results = [(cmd, p.wait(120), p.stderr.read()) for cmd, p in zip(commands, procs)]
        wait_for(lambda: "daemon ready" in daemon.log or daemon.proc.poll() is not None, 120, "the daemon to start")
    finally:
        daemon.stop()
        for p in procs:
            p.stdout.close()
            p.stderr.close()
    assert "daemon ready" in daemon.log, daemon.log
    assert "database" not in daemon.log.replace("database schema upgraded", ""), daemon.log
    # `current` has no key to print and the report names no key: both say so; none meets the database.
    expected = {"current": 2, "report": 2}
    assert [(cmd, rc) for cmd, rc, _ in results] == [(cmd, expected.get(cmd[0], 0)) for cmd in commands], results
    for cmd, _, err in results:
        assert "database" not in err and "internal error" not in err and "Traceback" not in err, (cmd, err)
