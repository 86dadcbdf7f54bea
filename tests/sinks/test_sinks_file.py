"""FileSink: the contract in both formats, modes, groups, failures, stale temp files."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import grp
import os
import stat
import subprocess
from collections.abc import Callable

import pytest
from sink_contract import SinkContract, new_fake_key

from keyward.errors import ConfigError, PublishError
from keyward.sinks.file import TEMP_PREFIX, FileSink, read_published_file

PR_CAPBSET_DROP, CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH = 24, 0, 1, 2


def _dropping(*capabilities: int) -> Callable[[], None]:
    """Return a child-side hook that gives up root capabilities before exec (the bounding set survives it)."""

    def drop() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        for capability in capabilities:
            if libc.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
                raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")

    return drop


@pytest.fixture
def break_sink(monkeypatch):
    """Make the disk fail after the temp file was written: the rename must never happen."""

    @contextlib.contextmanager
    def broken(sink):
        def failing_fsync(fd):
            raise OSError(errno.EIO, os.strerror(errno.EIO))

        with monkeypatch.context() as m:
            m.setattr(os, "fsync", failing_fsync)
            yield
        assert not [n for n in os.listdir(sink.parent) if n.startswith(TEMP_PREFIX)]

    return broken


class TestFileSinkRawContract(SinkContract):
    @pytest.fixture
    def sink(self, tmp_path):
        return FileSink("default", path=str(tmp_path / "default.key"))


class TestFileSinkEnvContract(SinkContract):
    @pytest.fixture
    def sink(self, tmp_path):
        return FileSink("default", path=str(tmp_path / "default.env"), format="env", mode=0o640)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("mode", [0o600, 0o640, "0640", "0600"])
def test_publish_when_mode_set_file_has_that_mode(tmp_path, mode):
    path = tmp_path / "k"
    FileSink("p", path=str(path), mode=mode).publish(new_fake_key(), "id")
    assert _mode(path) == (int(mode, 8) if isinstance(mode, str) else mode)


def test_publish_when_umask_permissive_file_still_0600(tmp_path):
    old = os.umask(0)
    try:
        FileSink("p", path=str(tmp_path / "k")).publish(new_fake_key(), "id")
    finally:
        os.umask(old)
    assert _mode(tmp_path / "k") == 0o600


@pytest.mark.parametrize("mode, dir_mode", [(0o600, 0o700), (0o640, 0o750)])
def test_publish_when_parent_missing_creates_it_private(tmp_path, mode, dir_mode):
    path = tmp_path / "run" / "keyward" / "default.key"
    FileSink("p", path=str(path), mode=mode).publish(new_fake_key(), "id")
    assert _mode(path.parent) == dir_mode
    assert path.is_file()


def test_publish_when_raw_writes_key_and_newline(tmp_path):
    key = new_fake_key()
    FileSink("p", path=str(tmp_path / "k")).publish(key, "id")
    assert (tmp_path / "k").read_text() == key + "\n"


def test_publish_when_env_writes_both_variables(tmp_path):
    key = new_fake_key("auth")
    FileSink("p", path=str(tmp_path / "k.env"), format="env").publish(key, "id")
    assert (tmp_path / "k.env").read_text() == f"GEMINI_API_KEY={key}\n"


def test_read_published_file_when_env_quoted_or_commented_returns_key(tmp_path):
    key = new_fake_key()
    (tmp_path / "k.env").write_text(f'# written by hand\nOTHER=1\nGEMINI_API_KEY="{key}"\n')
    assert read_published_file(tmp_path / "k.env", "env") == key


@pytest.mark.parametrize("content", ["", "\n", "OTHER=1\n"])
def test_read_published_file_when_no_key_returns_none(tmp_path, content):
    (tmp_path / "k").write_text(content)
    assert read_published_file(tmp_path / "k", "env") is None


def test_read_published_file_when_missing_returns_none(tmp_path):
    assert read_published_file(tmp_path / "absent", "raw") is None


def test_publish_when_group_set_file_belongs_to_group(tmp_path):
    group = grp.getgrgid(os.getegid()).gr_name
    sink = FileSink("p", path=str(tmp_path / "k"), mode=0o640, group=group)
    sink.publish(new_fake_key(), "id")
    assert os.stat(tmp_path / "k").st_gid == os.getegid()
    assert f"group {group}" in sink.describe()


def test_publish_when_group_unknown_raises_naming_it_and_keeps_old(tmp_path):
    old = new_fake_key()
    FileSink("p", path=str(tmp_path / "k")).publish(old, "old")
    sink = FileSink("p", path=str(tmp_path / "k"), mode=0o640, group="no-such-group-kw")
    with pytest.raises(PublishError, match="group 'no-such-group-kw' does not exist"):
        sink.publish(new_fake_key(), "new")
    assert sink.read() == old


FOREIGN_GROUP_PUBLISH = """
import sys
from keyward.errors import PublishError
from keyward.sinks.file import FileSink
try:
    FileSink("p", path=sys.argv[1], mode=0o640, group=sys.argv[2]).publish(sys.stdin.read(), "new")
except PublishError as exc:
    print(exc)
    sys.exit(3)
"""


def test_publish_when_group_not_ours_raises_and_leaves_no_temp(tmp_path, python_runner):
    foreign = next((g for g in grp.getgrall() if g.gr_gid not in {os.getegid(), *os.getgroups()}), None)
    if foreign is None:
        pytest.skip("this user belongs to every group")
    # Root may give a file any group unless it drops CAP_CHOWN first.
    preexec = _dropping(CAP_CHOWN) if os.geteuid() == 0 else None
    try:
        result = python_runner(FOREIGN_GROUP_PUBLISH, str(tmp_path / "k"), foreign.gr_name,
                               stdin=new_fake_key(), preexec_fn=preexec)
    except subprocess.SubprocessError as exc:
        pytest.skip(f"running as root without the right to drop CAP_CHOWN: {exc}")
    assert result.returncode == 3, result.stderr
    assert f"cannot give it group {foreign.gr_name}: Operation not permitted" in result.stdout
    assert os.listdir(tmp_path) == []


READ_ONLY_PUBLISH = """
import sys
from keyward.errors import PublishError
from keyward.sinks.file import FileSink
try:
    FileSink("p", path=sys.argv[1]).publish(sys.stdin.read(), "new")
except PublishError as exc:
    print(exc)
    sys.exit(3)
"""




def test_publish_when_directory_read_only_raises_and_keeps_old(tmp_path, python_runner):
    directory = tmp_path / "pub"
    directory.mkdir()
    path = str(directory / "k")
    old, new = new_fake_key(), new_fake_key()
    FileSink("p", path=path).publish(old, "old")
    directory.chmod(0o555)
    # Root ignores directory permissions unless it drops CAP_DAC_OVERRIDE first.
    preexec = _dropping(CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH) if os.geteuid() == 0 else None
    try:
        result = python_runner(READ_ONLY_PUBLISH, path, stdin=new, preexec_fn=preexec)
    except subprocess.SubprocessError as exc:
        pytest.skip(f"running as root without the right to drop CAP_DAC_OVERRIDE: {exc}")
    finally:
        directory.chmod(0o755)
    assert result.returncode == 3, result.stderr
    assert f"file {path} (raw, 0600): cannot create a file in {directory}" in result.stdout
    assert new not in result.stdout
    assert read_published_file(path) == old
    assert os.listdir(directory) == ["k"]


def test_cleanup_stale_temp_files_when_crash_leftovers_removes_only_ours(tmp_path):
    sink = FileSink("p", path=str(tmp_path / "a.key"))
    (tmp_path / f"{TEMP_PREFIX}a.key-x1y2").write_text("partial")
    (tmp_path / f"{TEMP_PREFIX}b.key-x1y2").write_text("another sink's")
    (tmp_path / "unrelated").write_text("keep")
    assert sink.cleanup_stale_temp_files() == 1
    assert sorted(os.listdir(tmp_path)) == [f"{TEMP_PREFIX}b.key-x1y2", "unrelated"]


def test_cleanup_stale_temp_files_when_directory_missing_returns_zero(tmp_path):
    assert FileSink("p", path=str(tmp_path / "none" / "k")).cleanup_stale_temp_files() == 0


@pytest.mark.parametrize(
    "options, message",
    [
        ({}, "'path' is required"),
        ({"path": "relative/k"}, "must be an absolute path"),
        ({"path": "/k", "format": "json"}, "format must be one of raw, env"),
        ({"path": "/k", "mode": 0o644}, "mode must be 0600 or 0640"),
        ({"path": "/k", "mode": "rw"}, "mode must be 0600 or 0640"),
        ({"path": "/k", "formt": "raw"}, "did you mean 'format'"),
        ({"path": "/k", "group": 5}, "group must be a group name"),
    ],
)
def test_file_sink_when_options_invalid_raises_config_error(options, message):
    with pytest.raises(ConfigError, match=message):
        FileSink("p", **options)


@pytest.mark.parametrize("secret", ["", "two words", "line\nbreak"])
def test_publish_when_secret_malformed_raises_without_writing(tmp_path, secret):
    sink = FileSink("p", path=str(tmp_path / "k"))
    with pytest.raises(PublishError, match="empty or contains whitespace"):
        sink.publish(secret, "id")
    assert os.listdir(tmp_path) == []


def test_publish_when_env_with_variables_writes_each_name_and_reads_back(tmp_path):
    key = new_fake_key("auth")
    sink = FileSink("p", path=str(tmp_path / "k.env"), format="env", variables=["MY_KEY", "GOOGLE_API_KEY"])
    sink.publish(key, "id")
    assert (tmp_path / "k.env").read_text() == f"MY_KEY={key}\nGOOGLE_API_KEY={key}\n"
    assert sink.read() == key


@pytest.mark.parametrize("variables", [[], ["1X"], ["A", "A"], "GEMINI_API_KEY", ["A=B"]])
def test_file_sink_when_variables_invalid_raises_config_error(tmp_path, variables):
    with pytest.raises(ConfigError, match="variables"):
        FileSink("p", path=str(tmp_path / "k.env"), format="env", variables=variables)


def test_change_marker_when_file_just_written_is_unknown_until_its_times_settle(tmp_path, monkeypatch):
    from keyward import atomicfile

    sink = FileSink("default", path=str(tmp_path / "default.key"))
    sink.publish(new_fake_key(), "key-1")
    monkeypatch.setattr(atomicfile, "SETTLE_NS", 10**15)
    assert sink.change_marker() is None  # a same-size rewrite in the same clock tick could hide
    monkeypatch.setattr(atomicfile, "SETTLE_NS", -10**15)
    assert sink.change_marker() == sink.change_marker() is not None


def test_change_marker_when_replaced_edited_or_removed_changes(tmp_path, monkeypatch):
    from keyward import atomicfile

    monkeypatch.setattr(atomicfile, "SETTLE_NS", -10**15)
    monkeypatch.setattr(atomicfile, "SETTLE_COARSE_NS", -10**15)
    path = tmp_path / "default.key"
    sink = FileSink("default", path=str(path))
    key = new_fake_key()
    sink.publish(key, "key-1")
    first = sink.change_marker()
    sink.publish(key, "key-1")  # the same content, written again: another file
    replaced = sink.change_marker()
    assert replaced != first
    os.chmod(path, 0o644)
    chmodded = sink.change_marker()
    assert chmodded != replaced
    before = os.lstat(path)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000_000))
    assert sink.change_marker() != chmodded
    path.unlink()
    assert sink.change_marker() is None
    path.symlink_to(tmp_path / "elsewhere")
    assert sink.change_marker() is not None and sink.change_marker() != first
