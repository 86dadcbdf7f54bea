"""The real daemon against bad files, bad databases and signals at bad moments."""

from __future__ import annotations

import signal
import socket
import sqlite3
import time
from pathlib import Path

from support.daemon_harness import DaemonProcess, wait_for, write_config
from test_e2e_daemon import PROJECTS, _context, _published, _rotation_started, emu, env  # noqa: F401


def test_daemon_on_a_newer_schema_exits_1_at_start_without_ready(tmp_path, emu, env):
    config = write_config(tmp_path, PROJECTS[:1])
    assert DaemonProcess(config, env, "--once").wait(60) == 0
    db = Path(tmp_path / "state" / "keyward.db")
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE alembic_version SET version_num = 'ffffffffffff'")
    proc = DaemonProcess(config, env)
    assert proc.wait(30) == 1, proc.log
    assert "newer keyward" in proc.log or "schema revision" in proc.log
    assert "daemon ready" not in proc.log and "Traceback" not in proc.log


def test_daemon_on_a_corrupt_database_exits_1_at_start(tmp_path, emu, env):
    config = write_config(tmp_path, PROJECTS[:1])
    db = tmp_path / "state" / "keyward.db"
    db.parent.mkdir(parents=True)
    db.write_bytes(b"\x00garbage" * 512)
    proc = DaemonProcess(config, env)
    assert proc.wait(30) == 1, proc.log
    assert "not a SQLite database" in proc.log and "daemon ready" not in proc.log


def test_sighup_with_a_file_that_used_to_crash_keeps_the_old_config(tmp_path, emu, env):
    config = write_config(tmp_path, PROJECTS[:1])
    proc = DaemonProcess(config, env)
    try:
        wait_for(lambda: "daemon ready" in proc.log, 60, "the daemon to be ready")
        good = config.read_text()
        for n, bad in enumerate(('max_age = "²"', 'max_age = "99999999999d"', "max_age = " + "9" * 5000), 1):
            config.write_text(good.replace('max_age = "2h"', bad))
            proc.signal(signal.SIGHUP)
            wait_for(lambda: proc.log.count("reload refused") >= n, 20, f"refused reload number {n}")
        assert proc.proc.poll() is None, proc.log
        assert "Traceback" not in proc.log
    finally:
        proc.stop()


def test_sighup_during_start_up_does_not_kill_the_daemon(tmp_path, emu, env):
    config = write_config(tmp_path, PROJECTS[:1])
    emu.inject_fault(service="apikeys", status=0, latency_ms=1500, count=3)  # a slow first pass
    proc = DaemonProcess(config, env)
    try:
        lock = Path(str(tmp_path / "state" / "keyward.db") + ".lock")
        wait_for(lambda: lock.exists() and lock.read_text().strip() == str(proc.proc.pid), 30,
                 "the daemon to hold its lock (signal handlers are installed before)")
        proc.signal(signal.SIGHUP)
        wait_for(lambda: "daemon ready" in proc.log or proc.proc.poll() is not None, 60,
                 "the daemon to be ready or dead")
        assert proc.proc.poll() is None, proc.log
    finally:
        proc.stop()
    emu.clear_faults()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sigterm_during_a_rotation_started_by_a_report_stops_within_10s(tmp_path, emu, env):
    """A report of an invalid key starts its replacement on the ingest's effects thread; Google is
    slow, so that rotation is still creating the key when SIGTERM comes: the daemon leaves it
    journaled and exits within 10 s anyway."""
    from keyward.config import load_config
    from keyward.usage.reporter import close, send_reports
    from keyward.usage.reports import ErrorReport

    port = _free_port()
    config = write_config(tmp_path, PROJECTS[:1], extra=f'ingest_tcp = "127.0.0.1:{port}"',
                          rotation='invalid_interval = "0s"')  # the first key's age does not hold it back
    proc = DaemonProcess(config, env)
    try:
        wait_for(lambda: "daemon ready" in proc.log and _published(tmp_path), 60, "the daemon")
        secret = _published(tmp_path)
        [live] = [k for k in emu.keys(PROJECTS[0][0])]
        _delete_at_google(emu, live["name"])  # Gemini really rejects it now: the check confirms it
        emu.inject_fault(service="apikeys", status=0, latency_ms=4000, count=20)
        body = {"error": {"code": 400, "status": "INVALID_ARGUMENT",
                          "message": "API key not valid. Please pass a valid API key.",
                          "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                                       "reason": "API_KEY_INVALID", "domain": "googleapis.com"}]}}
        cfg = load_config(config, env=env)
        reply = send_reports([ErrorReport(400, body, key=secret)], config=cfg)
        close()
        assert reply["via"] == "daemon" and reply["results"][0]["kind"] == "invalid_key", reply
        wait_for(lambda: _open_rotation(config, "invalid"), 30, "the replacement to start")
        started = time.monotonic()
        proc.signal(signal.SIGTERM)
        assert proc.wait(12) == 0, proc.log
        assert time.monotonic() - started < 10
        assert _open_rotation(config, "invalid"), "the replacement was to be cut short, journaled"
    finally:
        proc.stop()
        emu.clear_faults()
    assert secret not in proc.log


def _delete_at_google(emu, name: str) -> None:
    import urllib.request

    request = urllib.request.Request(f"http://{emu.address}/v2/{name}", method="DELETE",
                                     headers={"Authorization": "Bearer test"})
    with urllib.request.urlopen(request, timeout=10) as reply:
        assert reply.status == 200


def _open_rotation(config: Path, reason: str) -> bool:
    from sqlalchemy import select

    from keyward.storage.models import Rotation

    with _context(config) as ctx, ctx.store.read() as s:
        return s.scalar(select(Rotation.id).where(Rotation.reason == reason,
                                                  Rotation.finished_at.is_(None)).limit(1)) is not None
