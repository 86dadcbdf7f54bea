"""Replacing a file so that readers see the old content or the new, never a mix or nothing.

Temp file in the same directory (created with its final mode before any byte is written), write,
fsync, rename over the old file, fsync the directory: with a reader in a tight loop and the writer
killed by SIGKILL, no torn read was ever seen. A crash can leave a temp file behind; the temp
names share a prefix so that `remove_temp_files` cleans them at the next start.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time

log = logging.getLogger(__name__)


class AtomicWriteError(OSError):
    """Writing failed at `step` ("create a file in DIR", "give it group G", "write it"); the old
    file is untouched and the temp file removed."""

    def __init__(self, step: str, cause: OSError):
        super().__init__(cause.errno, cause.strerror)
        self.step = step


def replace_file(path: str | os.PathLike[str], data: bytes, *, mode: int, temp_prefix: str,
                 gid: int = -1, group_name: str | None = None) -> None:
    """Atomically replace `path` with `data` (mode `mode`, group `gid` unless -1)."""
    parent = os.path.dirname(os.fspath(path)) or "."
    try:
        fd, temp = tempfile.mkstemp(prefix=temp_prefix, dir=parent)
    except OSError as exc:
        raise AtomicWriteError(f"create a file in {parent}", exc) from None
    step = "write it"
    try:
        try:
            if gid != -1:
                step = f"give it group {group_name or gid}"
                os.fchown(fd, -1, gid)
                step = "write it"
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, path)
    except OSError as exc:
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise AtomicWriteError(step, exc) from None
    _fsync_dir(parent)


def _fsync_dir(parent: str) -> None:
    # The rename is done and visible; the directory fsync only makes it survive a power loss.
    try:
        dir_fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        log.warning("could not fsync directory %s: %s", parent, exc.strerror)


def remove_temp_files(directory: str | os.PathLike[str], temp_prefix: str) -> int:
    """Remove temp files a crashed writer left in `directory`; return how many."""
    try:
        names = os.listdir(directory)
    except OSError:
        return 0
    removed = 0
    for name in names:
        if name.startswith(temp_prefix):
            try:
                os.unlink(os.path.join(directory, name))
                removed += 1
            except OSError:
                pass
    return removed


def ensure_private_dir(path: str | os.PathLike[str], mode: int = 0o700, gid: int = -1) -> None:
    """Create `path` and any missing parents, each with exactly `mode` whatever the umask.

    `os.makedirs` gives intermediate directories 0777 minus the umask, which is 0777 under
    `umask 000`: every directory keyward creates goes through here instead. Existing directories
    are left as they are (they are the operator's).
    """
    path = os.path.abspath(os.fspath(path))
    missing: list[str] = []
    while not os.path.isdir(path):
        missing.append(path)
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory, mode)
        except FileExistsError:
            continue  # created meanwhile by someone else: theirs
        os.chmod(directory, mode)  # mkdir's mode is filtered by the umask
        if gid != -1:
            os.chown(directory, -1, gid)


# How long after a file's last change its timestamps can be trusted to show the next change: file
# systems stamp with a coarse clock (a kernel tick, at most 10 ms; whole seconds on some, 2 s on
# FAT), so a rewrite within the same tick may leave size, mtime and ctime as they were.
SETTLE_NS = 50_000_000
SETTLE_COARSE_NS = 2_000_000_000


def settled_marker(path: str | os.PathLike[str]) -> tuple[int, ...] | None:
    """Return a token that changes whenever the file at `path` is replaced, edited or removed.

    The token is the file's identity, size, mode, owner and change times (`lstat`: a symlink put in
    its place counts as a change). Return None when it cannot tell: the file is missing or
    unreadable, or it changed so recently that another change in the same clock tick could keep
    the token as it is (the "racy" case), so the caller reads the file instead. The ctime cannot
    be set back by anyone but the clock, so an edit that restores the mtime still shows.
    """
    try:
        st = os.lstat(path)
    except OSError:
        return None
    changed = max(st.st_mtime_ns, st.st_ctime_ns)
    coarse = st.st_mtime_ns % 1_000_000_000 == 0 and st.st_ctime_ns % 1_000_000_000 == 0
    if time.time_ns() - changed < (SETTLE_COARSE_NS if coarse else SETTLE_NS):
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns,
            st.st_ctime_ns)
