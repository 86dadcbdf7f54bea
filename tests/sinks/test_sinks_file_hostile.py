"""The file sink and `keyward current` against files someone else put in the way: a FIFO, a
symlink to /dev/zero, a huge file; directories made under umask 000; the lock of a database
reached through a symlink. Real processes where a hang would be the failure."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from sink_contract import new_fake_key

from keyward.atomicfile import ensure_private_dir
from keyward.errors import AlreadyRunning, PublishError
from keyward.lock import DaemonLock
from keyward.published import UnsafeFile, read_published_file
from keyward.sinks.file import FileSink

KEYWARD = str(Path(sys.executable).parent / "keyward")


def _config(tmp_path: Path, key_path: Path) -> Path:
    config = tmp_path / "keyward.toml"
    config.write_text(f'database = "sqlite:///{tmp_path}/k.db"\n[pools.default]\n'
                      f'model = "gemini-2.5-flash"\n[[pools.default.sinks]]\ntype = "file"\n'
                      f'path = "{key_path}"\n')
    return config


def _current(tmp_path: Path, config: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "KEYWARD_STATE_DIR": str(tmp_path / "state"),
           "KEYWARD_RUNTIME_DIR": str(tmp_path / "run"), "HOME": str(tmp_path)}
    return subprocess.run([KEYWARD, "--config", str(config), "current"],
                          capture_output=True, text=True, timeout=60, env=env)


def test_fifo_at_the_sink_path_neither_hangs_reading_nor_publishing(tmp_path):
    path = tmp_path / "pub" / "default.key"
    path.parent.mkdir()
    os.mkfifo(path)
    sink = FileSink("default", path=str(path))
    with pytest.raises(PublishError, match="not a regular file"):
        sink.read()
    result = _current(tmp_path, _config(tmp_path, path))  # would block forever on open()
    assert result.returncode != 0 and "not a regular file" in result.stderr
    secret = new_fake_key()
    sink.publish(secret, "k1")  # replaces the FIFO with a regular file
    assert stat.S_ISREG(os.lstat(path).st_mode) and sink.read() == secret


def test_symlink_to_dev_zero_is_refused_without_reading_it(tmp_path):
    path = tmp_path / "default.key"
    path.symlink_to("/dev/zero")
    with pytest.raises(UnsafeFile, match="symbolic link"):
        read_published_file(path)
    result = _current(tmp_path, _config(tmp_path, path))
    assert result.returncode != 0 and "symbolic link" in result.stderr


def test_a_huge_file_is_refused_after_a_few_kb(tmp_path):
    path = tmp_path / "default.key"
    with open(path, "wb") as fh:
        fh.truncate(1 << 30)  # sparse: costs nothing on disk, 1 GiB to a naive reader
    with pytest.raises(UnsafeFile, match="larger than"):
        read_published_file(path)


def test_directories_made_under_umask_000_are_private(tmp_path):
    old = os.umask(0)
    try:
        sink = FileSink("default", path=str(tmp_path / "a" / "b" / "c" / "default.key"))
        sink.publish(new_fake_key(), "k1")
        ensure_private_dir(tmp_path / "x" / "y", 0o700)
    finally:
        os.umask(old)
    for directory in ("a", "a/b", "a/b/c", "x", "x/y"):
        assert stat.S_IMODE((tmp_path / directory).stat().st_mode) == 0o700, directory
    assert stat.S_IMODE((tmp_path / "a/b/c/default.key").stat().st_mode) == 0o600


def test_state_dirs_of_a_real_process_under_umask_000_are_private(tmp_path):
    config = tmp_path / "keyward.toml"
    config.write_text(f'database = "sqlite:///{tmp_path}/deep/er/k.db"\n')
    env = {**os.environ, "KEYWARD_STATE_DIR": str(tmp_path / "st" / "ate"),
           "KEYWARD_RUNTIME_DIR": str(tmp_path / "run"), "HOME": str(tmp_path)}
    subprocess.run(["sh", "-c", f'umask 000; exec "{KEYWARD}" --config {config} pool list'],
                   capture_output=True, text=True, timeout=60, env=env, check=True)
    for directory in ("deep", "deep/er"):
        assert stat.S_IMODE((tmp_path / directory).stat().st_mode) == 0o700, directory


def test_two_daemons_on_one_sqlite_file_through_a_symlink_share_one_lock(tmp_path):
    from keyward.config import load_config

    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    configs = []
    for name, where in (("a.toml", real), ("b.toml", tmp_path / "link")):
        path = tmp_path / name
        path.write_text(f'database = "sqlite:///{where}/k.db"\n')
        configs.append(load_config(path, env={"HOME": str(tmp_path)}))
    first, second = (c.daemon.lock_file for c in configs)
    assert first == second
    with DaemonLock(first):
        with pytest.raises(AlreadyRunning):
            DaemonLock(second).acquire()
