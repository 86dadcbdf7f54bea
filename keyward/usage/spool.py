"""Reports nobody could take, kept in a per-user file until someone can.

A program reports to the daemon, else to the database. When neither answers (the daemon is
stopped and the program may not write the database, the usual case for a service running as its
own user) the reports are appended to this user's spool instead of being lost or raising, and
the next report that does get through delivers the spool first. Each spooled report carries the
time it was made (`at`), so it counts in the minute and the Pacific day it belongs to.

The spool is one JSON-lines file, 0600 in a 0700 directory owned by the user (reports name their
key by its SHA-256, never the key string, as on the wire), at `$KEYWARD_SPOOL_DIR`, else `$XDG_STATE_HOME/keyward/spool`, else
`~/.local/state/keyward/spool`, else `/var/tmp/keyward-spool-UID` for users without a writable
home. Writers and the deliverer take an flock on a lock file beside it, so concurrent processes
of one user neither interleave lines nor deliver a line twice. A report whose delivery was
committed but not acknowledged may be delivered again: counting too much is the safe side. A
report spooled more than 7 days before it can be delivered is dropped then (logged), as the daemon
refuses reports that old.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

from keyward.errors import KeywardError
from keyward.usage.reports import Report, from_json, to_json

log = logging.getLogger(__name__)

FILE_NAME = "reports.jsonl"
LOCK_NAME = "reports.lock"
MAX_BYTES = 64 << 20  # a month of a busy program's reports; past it the spool refuses, loudly
BATCH = 1000


class SpoolError(KeywardError):
    """A report could be neither delivered nor spooled (the spool is full or not writable)."""


def spool_dir(env: Mapping[str, str] | None = None) -> Path:
    """Return this user's spool directory (see the module docstring for the order)."""
    env = os.environ if env is None else env
    if env.get("KEYWARD_SPOOL_DIR"):
        return Path(env["KEYWARD_SPOOL_DIR"]).expanduser()
    if env.get("XDG_STATE_HOME"):
        return Path(env["XDG_STATE_HOME"]) / "keyward" / "spool"
    home = env.get("HOME") or os.path.expanduser("~")
    if home and os.path.isdir(home) and os.access(home, os.W_OK):
        return Path(home) / ".local" / "state" / "keyward" / "spool"
    return Path(f"/var/tmp/keyward-spool-{os.getuid()}")


def _stamped(report: Report, now: datetime) -> Report:
    return report if report.at is not None else replace(report, at=now)


class Spool:
    """One user's spool file."""

    def __init__(self, directory: Path | None = None):
        self.directory = Path(directory) if directory is not None else spool_dir()
        self.path = self.directory / FILE_NAME
        self.lock_path = self.directory / LOCK_NAME

    def pending(self) -> bool:
        """True when reports wait in the spool (a stat; cheap enough for every report)."""
        try:
            return os.stat(self.path).st_size > 0
        except OSError:
            return False

    def _ensure_directory(self) -> None:
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            st = os.lstat(self.directory)
        except OSError as exc:
            raise SpoolError(f"cannot create the report spool {self.directory}: {exc.strerror}") from None
        if st.st_uid != os.getuid() or not os.path.isdir(self.directory) or os.path.islink(self.directory):
            raise SpoolError(f"the report spool {self.directory} is not a directory owned by this user")

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def append(self, reports: list[Report], *, now: datetime | None = None) -> None:
        """Add `reports` (stamped with `now` when they carry no time); raise SpoolError if impossible."""
        now = now or datetime.now(timezone.utc)
        data = "".join(json.dumps(to_json(_stamped(r, now)), separators=(",", ":")) + "\n"
                       for r in reports).encode()
        self._ensure_directory()
        try:
            with self._locked():
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
                try:
                    if os.fstat(fd).st_size + len(data) > MAX_BYTES:
                        raise SpoolError(f"the report spool {self.path} is full ({MAX_BYTES >> 20} MiB): "
                                         "start the keyward daemon so it can take the reports")
                    os.write(fd, data)
                    os.fsync(fd)
                finally:
                    os.close(fd)
        except OSError as exc:
            raise SpoolError(f"cannot write the report spool {self.path}: {exc.strerror}") from None

    def deliver(self, send: Callable[[list[Report]], object]) -> int:
        """Send every spooled report through `send` (in batches); return how many left the spool.

        When the database or socket fails (StorageError, OSError) the batch stays spooled with
        everything after it, and the error propagates. A batch refused for its content (an unknown
        pool or key: another KeywardError) is sent again one report at a time, and only the reports
        refused on their own are logged and dropped, since they would be refused forever. Lines
        that no longer parse are dropped the same way.
        """
        from keyward.errors import StorageError

        if not self.pending():
            return 0
        delivered = 0
        with self._locked():
            try:
                with open(self.path, encoding="utf-8") as fh:
                    lines = fh.read().splitlines()
            except FileNotFoundError:
                return 0
            reports: list[Report] = []
            for number, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    reports.append(from_json(json.loads(line)))
                except (ValueError, KeywardError) as exc:
                    log.error("report spool %s line %d is unreadable and dropped: %s", self.path, number, exc)
            try:
                while delivered < len(reports):
                    batch = reports[delivered:delivered + BATCH]
                    try:
                        send(batch)
                        delivered += len(batch)
                        continue
                    except (StorageError, OSError):
                        raise
                    except KeywardError:
                        pass  # something in the batch is refused: find it
                    for report in batch:
                        try:
                            send([report])
                        except (StorageError, OSError):
                            raise
                        except KeywardError as exc:
                            log.error("a spooled report is refused and dropped (%r): %s", report, exc)
                        delivered += 1
            finally:
                self._rewrite(reports[delivered:])
        if delivered:
            log.info("delivered %d spooled report(s) from %s", delivered, self.path)
        return delivered

    def _rewrite(self, remaining: list[Report]) -> None:
        """Replace the spool with `remaining` (under the lock): a rename, so a crash keeps one or the other."""
        if not remaining:
            with contextlib.suppress(FileNotFoundError):
                os.truncate(self.path, 0)
            return
        from keyward.atomicfile import replace_file

        data = "".join(json.dumps(to_json(r), separators=(",", ":")) + "\n" for r in remaining).encode()
        replace_file(self.path, data, mode=0o600, temp_prefix=".reports-")
