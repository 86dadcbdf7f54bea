"""One keyward daemon per database: an exclusive `flock` on a lock file beside its state.

Two daemons rotating the same keys would race each other's journal and publish in turns, so the
daemon takes this lock before doing anything else. `flock` locks belong to the open file, which the
kernel closes when the process dies for any reason (including SIGKILL), so a crashed daemon never
leaves a stale lock behind. The file holds the holder's pid for messages and `keyward daemon status`;
the pid is informational only, the lock itself is the truth.
"""

from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path
from types import TracebackType

from keyward.errors import AlreadyRunning, StorageError

log = logging.getLogger(__name__)


class DaemonLock:
    """An exclusive, non-blocking, process-lifetime lock on `path` (created with mode 0600)."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self._fd: int | None = None

    def __repr__(self) -> str:
        return f"DaemonLock({str(self.path)!r}, held={self.held})"

    @property
    def held(self) -> bool:
        """True while this object holds the lock."""
        return self._fd is not None

    def acquire(self) -> DaemonLock:
        """Take the lock and record this process's pid in the file; return self.

        Raise AlreadyRunning naming the holder's pid if another process (or another DaemonLock
        on the same file) holds it, and StorageError if the file cannot be opened at all.
        """
        if self._fd is not None:
            return self
        fd = _open(self.path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            os.close(fd)
            who = f"pid {pid}" if pid is not None else "pid unknown"
            raise AlreadyRunning(
                f"another keyward daemon ({who}) holds {self.path}; stop it first or point this "
                "one at another database/state directory"
            ) from None
        except OSError as exc:
            os.close(fd)
            raise StorageError(f"cannot lock {self.path}: {exc.strerror}") from exc
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            os.fsync(fd)
        except OSError as exc:  # the lock is held regardless; the pid is only a courtesy
            log.warning("holding %s but could not record the pid: %s", self.path, exc.strerror)
        self._fd = fd
        log.debug("took daemon lock %s", self.path)
        return self

    def release(self) -> None:
        """Give the lock up (the file stays: unlinking a lock file lets two holders race)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)
        except OSError:
            pass
        finally:
            os.close(fd)  # closing the last descriptor drops the flock
        log.debug("released daemon lock %s", self.path)

    def __enter__(self) -> DaemonLock:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def holder_pid(path: str | os.PathLike[str]) -> int | None:
    """Return the pid of the process holding the lock at `path`, or None if nobody holds it.

    Works from any process, including the holder itself (each open of the file is a separate lock
    owner). A missing or unreadable file means nobody holds it.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_pid(fd)
        except OSError:
            return None
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _open(path: Path) -> int:
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        raise StorageError(f"cannot open lock file {path}: {exc.strerror}") from exc
    try:
        os.fchmod(fd, 0o600)
    except OSError:
        pass  # not our file: its owner chose the mode
    return fd


def _read_pid(fd: int) -> int | None:
    try:
        raw = os.pread(fd, 32, 0)
        return int(raw.decode("ascii").strip())
    except (OSError, ValueError, UnicodeDecodeError):
        return None
