"""Saying what is wrong with a database in words an operator can act on.

SQLAlchemy's exception class ("OperationalError") says little; the driver's first line and a few
known cases (server down, connection lost, database missing, read-only file, full disk, missing
privilege) say it. Every database failure keyward reports (opening, the schema check, upgrades,
the store's reads and writes) is worded here, so one phrase means one thing everywhere.
"""

from __future__ import annotations

import os
from pathlib import Path

from keyward.errors import StorageError

# Less free space than this (a few WAL frames) is a full disk for SQLite's purposes.
_FULL_BELOW = 64 * 1024
_LOST = "the connection to the database server was lost (the server restarted, or the network dropped it)"

# (lower-case text the driver says, what it means; None: the driver's own words say it best).
_HINTS = (
    ("connection refused", "the database server refused the connection: is it running, and on that host and port?"),
    ("could not translate host name", "the database host name does not resolve"),
    ("password authentication failed", "the database refused the user name or password"),
    ("terminating connection due to administrator command",
     "the database server ended this connection (an administrator, a restart or a dropped database)"),
    ("server closed the connection unexpectedly", _LOST),
    ("consuming input failed", _LOST),
    ("could not receive data from server", _LOST),
    ("could not send data to server", _LOST),
    ("ssl connection has been closed unexpectedly", _LOST),
    ("the connection is closed", _LOST),
    ("the database system is starting up", "the database server is still starting up"),
    ("the database system is shutting down", "the database server is shutting down"),
    ("too many connections", "the database server has no free connection slots (max_connections)"),
    ("remaining connection slots are reserved", "the database server has no free connection slots (max_connections)"),
    ("permission denied", "the database user lacks a privilege keyward needs"),
    ("read-only transaction", "the database server accepts only reads (a standby, or default_transaction_read_only)"),
    ("no space left on device", "the database server's disk is full"),
    ("does not exist", None),  # PostgreSQL names the database or role itself: keep its words
    # SQLite's words; " {file}" becomes the file's path when the URL is known.
    ("attempt to write a readonly database",
     "the SQLite database {file} is read-only to this user: check the owner and mode of the file and its directory"),
    ("database or disk is full", "the disk holding the SQLite database {file} is full"),
    ("disk i/o error", "SQLite could not read or write the database {file} or its -wal/-shm files (a disk I/O error)"),
    ("file is not a database", "the file {file} is not a SQLite database (or it is corrupt)"),
    ("database disk image is malformed", "the SQLite database file {file} is corrupt"),
    ("unable to open database file", "SQLite cannot open the file {file}: check the directory exists and is writable"),
    ("database is locked", "the SQLite database {file} stayed locked by another writer past the busy timeout"),
    ("out of range", None),
)


def database_failure(exc: BaseException, action: str, url: object = None) -> StorageError:
    """Return the StorageError for `exc`, raised while doing `action` ("database write failed").

    `url` (the engine's URL) lets the message name the SQLite file and check whether its disk is full.
    """
    return StorageError(f"{action}: {describe_database_error(exc, url)}")


def describe_database_error(exc: BaseException, url: object = None) -> str:
    """Return one line saying what went wrong, without the SQL statement or its parameters."""
    from keyward.keystrings import redact

    name = exc.__class__.__name__
    if name == "NoSuchModuleError" or isinstance(exc, ModuleNotFoundError):
        text = str(exc)
        scheme = text.rsplit(":", 1)[-1].strip() if ":" in text else text
        return (f"no database driver for {scheme!r}: keyward works with sqlite:/// and "
                "postgresql:// URLs (and psycopg for PostgreSQL)")
    orig = getattr(exc, "orig", None)
    first = str(orig if orig is not None else exc).strip().splitlines()
    # Redact before cutting: a cut through a key string would leave a piece no pattern recognises.
    first_line = redact(first[0])[:300] if first else name
    lowered = first_line.lower()
    for needle, hint in _HINTS:
        if needle in lowered:
            if hint is None:
                return first_line
            return f"{_sqlite_context(needle, hint, _sqlite_file(url))} ({first_line})"
    return f"{first_line} ({name})"


def _sqlite_file(url: object) -> Path | None:
    if url is None:
        return None
    try:
        from keyward.storage.engine import sqlite_path

        return sqlite_path(str(url))
    except Exception:  # an unparsable URL only costs the detail
        return None


def _sqlite_context(needle: str, hint: str, path: Path | None) -> str:
    """Name the SQLite file in a hint about it; say so when the disk holding it has no space left."""
    if path is None:
        return hint.replace(" {file}", "")
    # SQLite says "disk I/O error" when it cannot grow its -shm file: look at the disk itself.
    if needle == "disk i/o error" and _free_bytes(path.parent) < _FULL_BELOW:
        return f"the disk holding the SQLite database {path} is full"
    return hint.replace("{file}", str(path))


def _free_bytes(directory: Path) -> int:
    try:
        stat = os.statvfs(directory)
    except OSError:
        return _FULL_BELOW  # unknown: not evidence of a full disk
    return stat.f_bavail * stat.f_frsize
