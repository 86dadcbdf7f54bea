"""The single-daemon lock, held and contested by real processes."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from keyward.errors import AlreadyRunning, StorageError
from keyward.lock import DaemonLock, holder_pid

REPO = Path(__file__).resolve().parents[2]

# Takes the lock, says so, then waits for stdin to close (or to be killed).
HOLD = """
import sys
from keyward.lock import DaemonLock
lock = DaemonLock(sys.argv[1]).acquire()
print("locked", flush=True)
sys.stdin.read()
"""

# Tries the lock once; prints the error and exits 3 if someone else holds it.
TRY = """
import sys
from keyward.errors import AlreadyRunning
from keyward.lock import DaemonLock
try:
    DaemonLock(sys.argv[1]).acquire()
except AlreadyRunning as exc:
    print(exc, file=sys.stderr)
    sys.exit(3)
print("acquired")
"""


def _python(code: str, *args: str) -> list[str]:
    return [sys.executable, "-c", code, *args]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}


@pytest.fixture
def holder(tmp_path: Path):
    path = tmp_path / "keyward.lock"
    proc = subprocess.Popen(
        _python(HOLD, str(path)), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=_env()
    )
    try:
        assert proc.stdout.readline().strip() == "locked"  # returns "" if the child died instead
        yield proc, path
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
        proc.stdin.close()
        proc.stdout.close()


def test_acquire_when_other_process_holds_fails_naming_its_pid(holder):
    proc, path = holder

    result = subprocess.run(
        _python(TRY, str(path)), capture_output=True, text=True, env=_env(), timeout=60
    )

    assert result.returncode == 3, result.stderr
    assert f"another keyward daemon (pid {proc.pid}) holds {path}; stop it first" in result.stderr
    assert holder_pid(path) == proc.pid


def test_acquire_when_holder_was_sigkilled_succeeds(holder):
    proc, path = holder

    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)

    assert holder_pid(path) is None
    with DaemonLock(path) as lock:
        assert lock.held
        assert holder_pid(path) == os.getpid()


def test_acquire_when_same_process_locks_twice_raises(tmp_path: Path):
    path = tmp_path / "keyward.lock"
    with DaemonLock(path):
        with pytest.raises(AlreadyRunning, match=f"pid {os.getpid()}"):
            DaemonLock(path).acquire()


def test_release_when_done_lets_next_holder_in_and_clears_pid(tmp_path: Path):
    path = tmp_path / "keyward.lock"
    first = DaemonLock(path).acquire()

    first.release()

    assert not first.held
    assert holder_pid(path) is None
    assert path.read_text() == ""
    second = DaemonLock(path).acquire()
    assert second.held
    second.release()


def test_acquire_when_file_created_has_mode_0600(tmp_path: Path):
    path = tmp_path / "keyward.lock"
    old = os.umask(0)
    try:
        with DaemonLock(path):
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
            assert path.read_text() == f"{os.getpid()}\n"
    finally:
        os.umask(old)


def test_holder_pid_when_no_file_is_none(tmp_path: Path):
    assert holder_pid(tmp_path / "missing.lock") is None


def test_acquire_when_directory_missing_raises_storage_error(tmp_path: Path):
    with pytest.raises(StorageError, match="cannot open lock file"):
        DaemonLock(tmp_path / "no" / "such" / "keyward.lock").acquire()
