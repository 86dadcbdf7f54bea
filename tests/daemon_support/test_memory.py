"""keyward.memory: glibc's arena cap and trim where glibc is, nothing (and no error) elsewhere."""

from __future__ import annotations

import ctypes
import platform
from pathlib import Path

import pytest

from keyward import memory


@pytest.fixture(autouse=True)
def _fresh(monkeypatch):
    monkeypatch.setattr(memory, "_libc", None)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_limit_arenas_and_trim_when_glibc_apply():
    assert memory.limit_arenas() is True
    freed = [bytearray(64 * 1024) for _ in range(200)]  # freed memory for trim to hand back
    del freed
    assert isinstance(memory.trim(), bool)


def test_limit_arenas_and_trim_when_no_glibc_do_nothing(monkeypatch):
    def missing(*_args, **_kwargs):
        raise OSError("no such library")

    monkeypatch.setattr(ctypes, "CDLL", missing)
    assert memory.limit_arenas() is False
    assert memory.trim() is False


glibc_only = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc only")


class _Exec:
    def __init__(self, error: OSError | None = None):
        self.calls: list[tuple[str, list[str], dict[str, str]]] = []
        self.error = error

    def __call__(self, path, argv, env):
        self.calls.append((path, list(argv), dict(env)))
        if self.error is not None:
            raise self.error


def _big() -> int:
    return memory.MALLOC_FROM_PROJECTS


@glibc_only
def test_reexec_daemon_when_many_projects_runs_the_same_command_under_malloc():
    import sys

    execve, environ = _Exec(), {"HOME": "/home/op", "NOTIFY_SOCKET": "@n"}
    memory.reexec_daemon(_big, environ, execve)
    [(path, argv, env)] = execve.calls
    assert path == sys.executable and argv == sys.orig_argv
    assert env == {**environ, "PYTHONMALLOC": "malloc", memory.REEXEC_MARK: "1"}


@pytest.mark.parametrize("count", [None, 0, memory.MALLOC_FROM_PROJECTS - 1])
def test_reexec_daemon_when_few_or_unknown_projects_keeps_pymalloc(count):
    execve = _Exec()
    assert memory.reexec_daemon(lambda: count, {}, execve) is False
    assert execve.calls == []


def test_reexec_daemon_when_reexecuted_cleans_the_environment_for_children():
    execve = _Exec()
    environ = {"HOME": "/home/op", "PYTHONMALLOC": "malloc", memory.REEXEC_MARK: "1"}
    assert memory.reexec_daemon(_big, environ, execve) is False
    assert execve.calls == [] and environ == {"HOME": "/home/op"}


def test_reexec_daemon_when_operator_chose_an_allocator_keeps_it():
    execve, environ = _Exec(), {"PYTHONMALLOC": "pymalloc"}
    assert memory.reexec_daemon(_big, environ, execve) is False
    assert execve.calls == [] and environ == {"PYTHONMALLOC": "pymalloc"}


@glibc_only
def test_reexec_daemon_when_exec_fails_goes_on():
    execve = _Exec(PermissionError(13, "Permission denied"))
    assert memory.reexec_daemon(_big, {}, execve) is False
    assert len(execve.calls) == 1


def _database_with_projects(tmp_path: Path, n: int) -> Path:
    from support.daemon_harness import write_config

    from keyward.context import Context
    from keyward.storage import store as q

    config = write_config(tmp_path, [])
    with Context.load(str(config)) as ctx, ctx.store.write() as s:
        pool = q.list_pools(s)[0]
        for i in range(n):
            q.upsert_project(s, f"mem-project-{i:05d}", pool)
    return config


def test_project_count_reads_the_sqlite_database_and_none_without_one(tmp_path, kw_env):
    config = _database_with_projects(tmp_path, 3)
    assert memory.project_count(str(config)) == 3
    assert memory.project_count(str(tmp_path / "missing.toml")) is None
    (tmp_path / "state" / "keyward.db").unlink()
    assert memory.project_count(str(config)) is None


@glibc_only
def test_run_when_many_projects_reexecutes_in_place_and_still_stops_on_sigterm(tmp_path, kw_env):
    import signal

    from support.daemon_harness import DaemonProcess, wait_for

    config = _database_with_projects(tmp_path, memory.MALLOC_FROM_PROJECTS)
    proc = DaemonProcess(config, kw_env)
    try:
        environ = Path(f"/proc/{proc.proc.pid}/environ")
        # The same PID (what systemd watches) now runs with the allocator set by the re-exec.
        wait_for(lambda: b"PYTHONMALLOC=malloc\0" in environ.read_bytes(), 60, "the re-exec")
        wait_for(lambda: (tmp_path / "run" / "status.sock").exists(), 60, "the status socket")
        proc.signal(signal.SIGTERM)
        assert proc.wait(30) == 0, proc.log
    finally:
        proc.stop()
