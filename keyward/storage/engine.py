"""Opening the database: URL normalisation, SQLite pragmas, file modes, write transactions.

SQLite is the embedded default and is written by the daemon and by CLI invocations at once. With
pysqlite's default deferred transactions, read-modify-write cycles either lose updates or fail with
"database is locked"; issuing `BEGIN IMMEDIATE` ourselves (SQLAlchemy's documented recipe) makes
writers queue on the busy timeout instead. WAL lets readers go on while one writer writes.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from keyward.errors import StorageError

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 30_000
# Execution option marking a connection that only reads.
READ_ONLY = "keyward_read_only"


def normalise_url(url: str) -> str:
    """Return `url` with the driver keyward ships for it (psycopg 3 for PostgreSQL).

    Raise StorageError naming the URL's scheme when SQLAlchemy cannot parse it.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StorageError(f"database URL is not valid: {_redact_url(url)}") from exc
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def _redact_url(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url.split("://", 1)[0] + "://…"


def sqlite_path(url: str) -> Path | None:
    """Return the file behind a SQLite URL, or None for other databases and in-memory SQLite."""
    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite"):
        return None
    if not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def prepare_sqlite_file(path: Path) -> None:
    """Create the database file 0600 inside a 0700 directory before SQLite creates it 0644.

    The file holds key strings; it must never be readable by anyone else, not even for an instant.
    """
    from keyward.atomicfile import ensure_private_dir

    ensure_private_dir(path.parent, 0o700)
    if not path.exists():
        fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
        os.close(fd)
    for sidecar in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        try:
            if sidecar.stat().st_mode & 0o077:
                os.chmod(sidecar, 0o600)
        except FileNotFoundError:  # absent, or just removed by another process's last connection closing
            continue


def make_engine(url: str) -> Engine:
    """Return an Engine for `url`; SQLite files get WAL, a busy timeout and BEGIN IMMEDIATE.

    Raise StorageError saying what is wrong (no driver for the scheme, a file that cannot be made).
    """
    try:
        return _make_engine(url)
    except (ImportError, NoSuchModuleError) as exc:
        scheme = url.split("://", 1)[0]
        why = f"{exc.name} is not installed" if isinstance(exc, ImportError) and exc.name else "unknown scheme"
        if isinstance(exc, ImportError) and (exc.name or "").startswith("psycopg"):
            # PostgreSQL's driver is an extra, not a dependency
            raise StorageError(f"no database driver for {scheme}:// ({why}): install it with "
                               "pip install 'keyward[postgresql]'") from None
        raise StorageError(f"no database driver for {scheme}:// ({why}): keyward works with "
                           "sqlite:/// and postgresql:// URLs") from None


def _make_engine(url: str) -> Engine:
    url = normalise_url(url)
    path = sqlite_path(url)
    if path is not None:
        try:
            prepare_sqlite_file(path)
        except OSError as exc:
            raise StorageError(f"cannot create the database file {path}: {exc.strerror}") from exc
        # SQLite creates -wal/-shm files with the main file's mode, and our umask keeps them private.
        engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000})
        _install_sqlite_hooks(engine)
        return engine
    if url.startswith("sqlite"):
        engine = create_engine(url)
        _install_sqlite_hooks(engine)
        return engine
    return create_engine(url, pool_pre_ping=True)


def _install_sqlite_hooks(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        # Let SQLAlchemy, not pysqlite, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        _switch_to_wal(cursor)
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        # Overwrite freed space with zeros: a key string replaced by its sealed value (or a deleted
        # key) must not linger in a page's free space for a copied file to reveal.
        cursor.execute("PRAGMA secure_delete = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection):
        # Readers (status, current) take a deferred transaction so they never queue behind writers.
        if connection.get_execution_options().get(READ_ONLY):
            connection.exec_driver_sql("BEGIN")
        else:
            connection.exec_driver_sql("BEGIN IMMEDIATE")


def _switch_to_wal(cursor) -> None:
    """Put the file in WAL mode, waiting (up to the busy timeout) for another process's first write.

    While another connection holds the write lock of a file still in rollback-journal mode, SQLite
    answers `PRAGMA journal_mode = WAL` with SQLITE_BUSY at once, without calling the busy handler.
    On a brand-new file that is exactly what happens when several commands start together: the
    first one writes the header (in a rollback transaction) and every other one fails. Once the
    header says WAL, the pragma needs no write lock, so waiting for that transaction is enough.
    """
    import sqlite3

    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    pause = 0.001
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:  # SQLITE_BUSY's message; SQLAlchemy has not wrapped it
            if "database is locked" not in str(exc) or time.monotonic() + pause > deadline:
                raise
        if pause == 0.001:
            log.debug("another process is writing the new database file; waiting to switch it to WAL")
        time.sleep(pause)  # a back-off between retries, bounded by the deadline above
        pause = min(pause * 2, 0.05)


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"
