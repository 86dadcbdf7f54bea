"""The real daemon as a subprocess against the emulator: a full pass, systemd notify, signals, the lock."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support.daemon_harness import DaemonProcess, wait_for, write_config

PROJECTS = [("e2e-alpha-1", "200000000001"), ("e2e-bravo-2", "200000000002")]


@pytest.fixture
def emu(monkeypatch):
    from keyward.emulator import Emulator

    emu = Emulator().start()
    for pid, number in PROJECTS:
        emu.add_project(pid, number)
    monkeypatch.setenv("KEYWARD_GOOGLE_EMULATOR_HOST", emu.address)
    yield emu
    emu.stop()


@pytest.fixture
def env(emu, kw_env, monkeypatch):
    monkeypatch.setenv("KEYWARD_GOOGLE_EMULATOR_HOST", emu.address)  # kw_env cleared it
    return {**kw_env, "KEYWARD_GOOGLE_EMULATOR_HOST": emu.address}


def _context(config: Path):
    from keyward.context import Context

    return Context.load(str(config))


def _live_keys(emu, pid: str) -> set[str]:
    return {k["name"] for k in emu.keys(pid)}


def _keys_by_state(config: Path) -> dict[str, list]:
    from keyward.storage import store as q

    with _context(config) as ctx, ctx.store.read() as s:
        out: dict[str, list] = {}
        for key in q.list_keys(s):
            out.setdefault(key.state, []).append((key.project.project_id, key.key_id, key.google_name))
        return out


def _published(base: Path) -> str | None:
    from keyward.sinks.file import read_published_file

    return read_published_file(base / "run" / "default.key")


def test_run_once_when_projects_have_no_keys_creates_verifies_and_publishes(tmp_path, emu, env):
    config = write_config(tmp_path, PROJECTS)
    proc = DaemonProcess(config, env, "--once")
    assert proc.wait(60) == 0, proc.log
    states = _keys_by_state(config)
    assert sorted(p for p, _, _ in states["active"]) == sorted(p for p, _ in PROJECTS)
    secret = _published(tmp_path)
    assert secret and secret.startswith("AQ.") and emu.key_string_valid(secret)
    for pid, _ in PROJECTS:  # nothing at Google that keyward does not know
        known = {name for p, _, name in states["active"] if p == pid}
        assert _live_keys(emu, pid) == known
    assert secret not in proc.log


def test_run_once_when_key_is_due_rotates_it_and_polls_usage(tmp_path, emu, env):
    from keyward.google.gemini import generate_content
    from keyward.storage import store as q

    config = write_config(tmp_path, PROJECTS[:1])
    assert DaemonProcess(config, env, "--once").wait(60) == 0
    first = _published(tmp_path)
    generate_content(first, "gemini-2.5-flash", "hello there")  # traffic Monitoring will report
    with _context(config) as ctx, ctx.store.write() as s:
        for key in q.list_keys(s):
            key.rotate_after = ctx.now().replace(year=2000)
    proc = DaemonProcess(config, env, "--once")
    assert proc.wait(60) == 0, proc.log
    states = _keys_by_state(config)
    assert len(states["active"]) == 1 and len(states["previous"]) == 1
    second = _published(tmp_path)
    assert second != first and emu.key_string_valid(second)
    assert emu.key_string_valid(first), "the previous key must stay valid during its grace period"
    from sqlalchemy import select

    from keyward.storage.models import UsageMinute

    with _context(config) as ctx, ctx.store.read() as s:
        rows = s.scalars(select(UsageMinute).where(UsageMinute.source == "monitoring")).all()
    assert sum(r.requests for r in rows) >= 1


def _notify_socket(tmp_path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify.sock"))
    sock.settimeout(0.2)
    return sock


def _drain(sock: socket.socket, messages: list[str]) -> list[str]:
    try:
        while True:
            messages.append(sock.recv(4096).decode())
    except (socket.timeout, BlockingIOError):
        return messages


def test_daemon_under_notify_sends_ready_watchdog_and_stops_on_sigterm(tmp_path, emu, env):
    config = write_config(tmp_path, PROJECTS)
    sock = _notify_socket(tmp_path)
    proc = DaemonProcess(config, {**env, "NOTIFY_SOCKET": str(tmp_path / "notify.sock"),
                                  "WATCHDOG_USEC": "400000"})
    try:
        messages: list[str] = []
        wait_for(lambda: any("READY=1" in m for m in _drain(sock, messages)), 60, "READY=1")
        wait_for(lambda: any("WATCHDOG=1" in m for m in _drain(sock, messages)), 10, "WATCHDOG=1")
        # READY=1 does not wait for Google: the first pass creates the keys after it.
        wait_for(lambda: _published(tmp_path), 60, "the first pass to publish a key")
        status_sock = Path(env["KEYWARD_RUNTIME_DIR"]) / "status.sock"
        assert status_sock.exists(), "the daemon answers keyward status over its socket"
        shown = subprocess.run([sys.executable, "-m", "keyward", "--config", str(config), "status", "--json"],
                               capture_output=True, text=True, env={**os.environ, **env}, timeout=60)
        data = json.loads(shown.stdout)
        assert data["daemon"]["running"] is True and data["daemon"]["pid"] == proc.proc.pid
        assert sorted(p["project_id"] for p in data["projects"]) == sorted(p for p, _ in PROJECTS)
        started = time.monotonic()
        proc.signal(signal.SIGTERM)
        assert proc.wait(10) == 0, proc.log
        assert time.monotonic() - started < 10
        assert any("STOPPING=1" in m for m in _drain(sock, messages))
        assert not status_sock.exists(), "a stopped daemon removes its status socket"
    finally:
        proc.stop()
        sock.close()


def test_ready_when_google_is_slow_comes_with_a_key_published_before_google_answers(tmp_path, emu, env):
    config = write_config(tmp_path, PROJECTS)
    assert DaemonProcess(config, env, "--once").wait(60) == 0  # every project has a key now
    published = _published(tmp_path)
    emu.inject_fault("*", status=0, latency_ms=60_000, count=1000)  # Google stops answering
    os.unlink(tmp_path / "run" / "default.key")
    sock = _notify_socket(tmp_path)
    proc = DaemonProcess(config, {**env, "NOTIFY_SOCKET": str(tmp_path / "notify.sock")})
    try:
        messages: list[str] = []
        wait_for(lambda: any("READY=1" in m for m in _drain(sock, messages)), 30, "READY=1 despite Google")
        assert _published(tmp_path) == published, "READY=1 comes once the pool's key is published"
        assert emu.key_string_valid(published)
        proc.signal(signal.SIGTERM)
        assert proc.wait(30) == 0, proc.log
    finally:
        emu.clear_faults()
        proc.stop()
        sock.close()


def test_sigterm_right_after_sighup_still_stops_the_daemon(tmp_path, emu, env):
    """Both signals land before the main loop wakes (systemd's `reload` then `stop`, a script's
    kill -HUP; kill -TERM): the reload may run, but the stop must not be forgotten."""
    config = write_config(tmp_path, PROJECTS[:1])
    proc = DaemonProcess(config, env)
    try:
        wait_for(lambda: "daemon ready" in proc.log, 60, "the daemon to be ready")
        os.kill(proc.proc.pid, signal.SIGHUP)
        os.kill(proc.proc.pid, signal.SIGTERM)
        assert proc.wait(12) == 0, proc.log
    finally:
        proc.stop()


def test_a_storm_of_sighups_then_sigterm_reloads_and_stops(tmp_path, emu, env):
    """Signal handlers run on the main thread between bytecodes, wherever the main loop is; one that
    took a lock the loop holds at that moment would hang the daemon until SIGKILL. Hundreds of
    SIGHUPs (each reload is a loop turn), then SIGTERM: the daemon reloads, answers and stops."""
    config = write_config(tmp_path, PROJECTS[:1])
    proc = DaemonProcess(config, env)
    try:
        wait_for(lambda: "daemon ready" in proc.log, 60, "the daemon to be ready")
        for n in range(400):
            os.kill(proc.proc.pid, signal.SIGHUP)
            if n % 20 == 0:  # let some land mid-reload, some mid-wait
                wait_for(lambda: proc.log.count("configuration reloaded") >= n // 20 + 1, 20,
                         "a reload to finish")
        os.kill(proc.proc.pid, signal.SIGTERM)
        assert proc.wait(12) == 0, proc.log[-3000:]
        assert "Traceback" not in proc.log
    finally:
        proc.stop()


def test_sighup_moving_the_database_runs_on_the_new_one_and_stops_cleanly(tmp_path, emu, env):
    """A reload that names another database: the daemon leads, rotates and publishes there, and the
    old one is closed for good (a job still on it may not reopen it)."""
    from sqlalchemy import create_engine, text

    config = write_config(tmp_path, PROJECTS[:1])
    proc = DaemonProcess(config, env)
    moved = tmp_path / "moved.db"
    try:
        wait_for(lambda: "first pass done" in proc.log, 60, "the first pass")
        config.write_text(f'database = "sqlite:///{moved}"\n' + config.read_text())
        proc.signal(signal.SIGHUP)
        wait_for(lambda: "configuration reloaded" in proc.log, 20, "the reload")

        def active_keys_in_moved() -> int:
            engine = create_engine(f"sqlite:///{moved}")
            try:
                with engine.connect() as conn:
                    return int(conn.execute(text("SELECT count(*) FROM keys WHERE state = 'active'")).scalar())
            except Exception:  # not created yet
                return 0
            finally:
                engine.dispose()

        wait_for(active_keys_in_moved, 30, "the project's first key in the new database")
        proc.signal(signal.SIGTERM)
        assert proc.wait(12) == 0, proc.log
        assert "Traceback" not in proc.log
    finally:
        proc.stop()


def test_sighup_with_good_config_reloads_and_with_bad_config_keeps_running(tmp_path, emu, env):
    from keyward.storage import store as q

    config = write_config(tmp_path, PROJECTS[:1])
    proc = DaemonProcess(config, env)
    try:
        wait_for(lambda: "daemon ready" in proc.log, 60, "the daemon to be ready")
        write_config(tmp_path, PROJECTS)  # a second project appears
        proc.signal(signal.SIGHUP)
        wait_for(lambda: "configuration reloaded" in proc.log, 20, "the reload")

        def has_both() -> bool:
            with _context(config) as ctx, ctx.store.read() as s:
                return {p.project_id for p in q.list_projects(s)} == {p for p, _ in PROJECTS}

        wait_for(has_both, 20, "the new project in the database")
        config.write_text(config.read_text().replace('poll_interval = "10s"', 'poll_intervall = "10s"'))
        proc.signal(signal.SIGHUP)
        wait_for(lambda: "reload refused" in proc.log, 20, "the refused reload")
        assert "poll_intervall" in proc.log and "did you mean" in proc.log
        assert proc.proc.poll() is None, "a bad config must not stop the daemon"

        def beat() -> str | None:
            with _context_noconfig(tmp_path) as ctx, ctx.store.read() as s:
                row = q.get_meta(s, "heartbeat")
                return row and json.loads(row.value)["at"]

        first = beat()
        wait_for(lambda: beat() != first, 10, "a heartbeat after the refused reload")
    finally:
        proc.stop()


def test_sighup_adding_a_managed_project_gives_it_a_key_long_before_the_next_rotation_check(
        tmp_path, emu, env):
    hourly = lambda path: path.write_text(path.read_text().replace('rotation_check = "1s"',
                                                                     'rotation_check = "1h"'))
    config = write_config(tmp_path, PROJECTS[:1])
    hourly(config)
    proc = DaemonProcess(config, env)
    try:
        wait_for(lambda: _live_keys(emu, PROJECTS[0][0]), 60, "the first project's key")
        wait_for(lambda: "first pass done" in proc.log, 60, "the first pass")
        write_config(tmp_path, PROJECTS)
        hourly(config)
        proc.signal(signal.SIGHUP)
        wait_for(lambda: "configuration reloaded" in proc.log, 20, "the reload")
        wait_for(lambda: any(pid == PROJECTS[1][0] for pid, _, _ in _keys_by_state(config).get("active", [])),
                 30, "a key for the project the reload added")
        assert len(_live_keys(emu, PROJECTS[0][0])) == 1, "the reload must not rotate what is not due"
    finally:
        proc.stop()


def test_sighup_during_the_first_pass_adds_the_project_when_the_pass_ends(tmp_path, emu, env):
    """A reload while the first pass still runs (Google is slow) leaves the scheduling to the pass,
    which then uses the new configuration and gives the added project its key at once, not at the
    next hourly rotation check."""
    hourly = lambda path: path.write_text(path.read_text().replace('rotation_check = "1s"',  # noqa: E731
                                                                     'rotation_check = "1h"'))
    config = write_config(tmp_path, PROJECTS[:1])
    hourly(config)
    emu.inject_fault(service="apikeys", status=0, latency_ms=1500, count=4)  # a slow first pass
    proc = DaemonProcess(config, env)
    try:
        wait_for(lambda: "daemon ready" in proc.log, 60, "the daemon to be ready")
        write_config(tmp_path, PROJECTS)
        hourly(config)
        proc.signal(signal.SIGHUP)
        wait_for(lambda: "configuration reloaded" in proc.log, 20, "the reload")
        assert "first pass done" not in proc.log.split("configuration reloaded")[0], "too late to test"
        wait_for(lambda: "first pass done" in proc.log, 60, "the first pass")
        wait_for(lambda: any(pid == PROJECTS[1][0] for pid, _, _ in _keys_by_state(config).get("active", [])),
                 30, "a key for the project the reload added")
    finally:
        proc.stop()
        emu.clear_faults()


def _rotation_started(config: Path) -> bool:
    from sqlalchemy import select

    from keyward.storage.models import Rotation

    try:
        with _context(config) as ctx, ctx.store.read() as s:
            return s.scalar(select(Rotation.id).limit(1)) is not None
    except Exception:  # the daemon may still be creating the database
        return False


def _context_noconfig(base: Path):
    """A context on the daemon's database that does not read the (deliberately broken) config."""
    from keyward.config import load_config
    from keyward.context import Context

    return Context(load_config(None, env={"KEYWARD_STATE_DIR": str(base / "state"),
                                          "KEYWARD_RUNTIME_DIR": str(base / "run")}))


def test_second_daemon_on_same_state_exits_1_naming_the_first(tmp_path, emu, env):
    config = write_config(tmp_path, PROJECTS[:1])
    first = DaemonProcess(config, env)
    try:
        wait_for(lambda: "daemon ready" in first.log, 60, "the first daemon")
        second = DaemonProcess(config, env)
        assert second.wait(30) == 1
        assert "another keyward daemon" in second.log and str(first.proc.pid) in second.log
        assert "Traceback" not in second.log
    finally:
        first.stop()


def test_sigterm_during_slow_rotation_stops_in_time_and_next_start_converges(tmp_path, emu, env):
    config = write_config(tmp_path, PROJECTS[:1])
    emu.inject_fault(service="apikeys", status=0, latency_ms=4000, count=20)
    proc = DaemonProcess(config, env)
    try:
        wait_for(lambda: _rotation_started(config), 30, "the rotation to be journaled")
        started = time.monotonic()
        proc.signal(signal.SIGTERM)
        assert proc.wait(12) == 0, proc.log
        assert time.monotonic() - started < 10  # the README's promise for SIGTERM
    finally:
        proc.stop()
    emu.clear_faults()
    again = DaemonProcess(config, env, "--once")
    assert again.wait(60) == 0, again.log
    states = _keys_by_state(config)
    assert len(states["active"]) == 1
    live = _live_keys(emu, PROJECTS[0][0])
    known = {name for state in states.values() for _, _, name in state if name}
    assert live <= known, "a key at Google that keyward does not know was left behind"
    assert emu.key_string_valid(_published(tmp_path))


def test_second_daemon_with_other_state_dir_on_same_sqlite_file_is_refused(tmp_path, emu, env):
    config = write_config(tmp_path / "one", PROJECTS[:1])
    database = Path(env["KEYWARD_STATE_DIR"]) / "keyward.db"  # where the first daemon keeps its state
    other = write_config(tmp_path / "two", PROJECTS[:1])  # its own state and runtime dirs ...
    other.write_text(f'database = "sqlite:///{database}"\n' + other.read_text())  # ... the same database
    own_dirs = {k: v for k, v in env.items() if k not in ("KEYWARD_STATE_DIR", "KEYWARD_RUNTIME_DIR")}
    first = DaemonProcess(config, env)
    try:
        wait_for(lambda: "daemon ready" in first.log, 60, "the first daemon")
        second = DaemonProcess(other, {**own_dirs, "KEYWARD_STATE_DIR": "", "KEYWARD_RUNTIME_DIR": ""})
        assert second.wait(30) == 1, second.log
        assert "another keyward daemon" in second.log and f"{database}.lock" in second.log
        assert not (tmp_path / "two" / "state" / "keyward.db").exists()
        # the refused daemon never ran: it must not mark the shared heartbeat row stopped
        from keyward.storage import store as q

        with _context(config) as ctx, ctx.store.read() as s:
            beat = json.loads(q.get_meta(s, "heartbeat").value)
        assert beat["pid"] == first.proc.pid and beat["stopped_at"] is None, beat
    finally:
        first.stop()


def test_daemon_refused_for_another_hosts_sqlite_file_leaves_the_shared_heartbeat_alone(tmp_path, emu, env):
    """Refused at start, a daemon never ran: its exit must not mark the running service stopped."""
    from keyward.leadership.members import write_instance
    from keyward.storage import store as q

    config = write_config(tmp_path, PROJECTS[:1])
    assert DaemonProcess(config, env, "--once").wait(60) == 0  # the database exists
    theirs = {"pid": 4242, "host": "other-host", "version": "x", "started_at": "2026-01-01T00:00:00+00:00",
              "at": "2026-01-01T00:00:00+00:00", "stopped_at": None}
    with _context(config) as ctx, ctx.store.write() as s:
        write_instance(s, {"id": "0123456789ab", "kind": "daemon", "host": "other-host", "pid": 4242}, ctx.now())
        q.set_meta(s, "heartbeat", json.dumps(theirs), now=ctx.now())
    proc = DaemonProcess(config, env)
    assert proc.wait(30) == 1, proc.log
    assert "other-host" in proc.log and "cannot be shared between hosts" in proc.log
    with _context(config) as ctx, ctx.store.read() as s:
        assert json.loads(q.get_meta(s, "heartbeat").value) == theirs


def test_running_daemon_when_the_key_file_is_removed_replaced_or_edited_restores_it(tmp_path, emu, env):
    """The timer pass reads the file only when its stat changed; every kind of change still shows."""
    config = write_config(tmp_path, PROJECTS[:1])
    proc = DaemonProcess(config, env)
    path = tmp_path / "run" / "default.key"
    try:
        wait_for(lambda: "daemon ready" in proc.log, 60, "the daemon to be ready")
        secret = wait_for(lambda: _published(tmp_path), 30, "a published key")
        path.unlink()
        wait_for(lambda: _published(tmp_path) == secret, 30, "the removed file to be restored")
        other = tmp_path / "run" / "edited"
        other.write_text("AQ." + "x" * (len(secret) - 3) + "\n")
        os.replace(other, path)  # how an editor saves: another file under the same name
        wait_for(lambda: _published(tmp_path) == secret, 30, "the replaced file to be restored")
        before = path.stat().st_size
        with open(path, "r+b") as f:  # same inode, same size: only the times show it
            f.write(b"AQ." + b"y" * (before - 4) + b"\n")
        wait_for(lambda: _published(tmp_path) == secret, 30, "the file edited in place to be restored")
        assert secret not in proc.log
    finally:
        proc.stop()
