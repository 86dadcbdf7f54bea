"""Database failures with real causes reach the user as one named line: exit 1, what is wrong, no traceback.

Each cause is the real thing: a read-only file, a full disk (a small tmpfs), a lock held past the busy
timeout, a PostgreSQL session terminated mid-command, a dropped database, a role without privileges.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import example, given, settings
from hypothesis import strategies as st

from keyward.cli.app import cli
from keyward.errors import StorageError
from keyward.storage.failures import database_failure, describe_database_error
from support.fakes import fake_auth_key

KEYWARD = str(Path(sys.executable).parent / "keyward")
PR_CAPBSET_DROP, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH = 24, 1, 2


def _keyward(*args: str, env: dict[str, str], preexec_fn=None) -> subprocess.CompletedProcess:
    return subprocess.run([KEYWARD, *args], env=env, capture_output=True, text=True, timeout=120,
                          preexec_fn=preexec_fn)


def _named(stderr: str, *words: str) -> None:
    assert "Traceback" not in stderr and "internal error" not in stderr, stderr
    for word in words:
        assert word in stderr, stderr


def _as_ordinary_user() -> None:
    """In the child: give up root's right to ignore file modes (the bounding set survives exec)."""
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
        if libc.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


@pytest.fixture
def sqlite_env(kw_env, tmp_path):
    def env_for(db: Path) -> dict[str, str]:
        return {**os.environ, **kw_env, "HOME": str(tmp_path), "KEYWARD_DATABASE_URL": f"sqlite:///{db}"}

    return env_for


def test_write_when_the_sqlite_file_is_read_only_exits_1_saying_so(tmp_path, sqlite_env):
    db = tmp_path / "db" / "keyward.db"
    env = sqlite_env(db)
    assert _keyward("pool", "add", "first", env=env).returncode == 0
    db.chmod(0o400)
    preexec = _as_ordinary_user if os.geteuid() == 0 else None
    result = _keyward("pool", "add", "second", env=env, preexec_fn=preexec)
    assert result.returncode == 1, result.stderr
    _named(result.stderr, f"database write failed: the SQLite database {db} is read-only to this user")
    listing = _keyward("pool", "list", env=env, preexec_fn=preexec)
    assert listing.returncode == 0 and "first" in listing.stdout, listing.stderr


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB tmpfs of our own, so the disk can be filled for real."""
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a small tmpfs")
    mount = tmp_path / "small-disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)


def _fill(disk: Path, leave: int) -> None:
    """Fill `disk` to the last byte, then give back `leave` bytes."""
    fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, bytes(64 * 1024))
    except OSError as exc:
        assert exc.errno == 28, exc  # ENOSPC
    try:  # fill the last partial chunk too
        while True:
            os.write(fd, bytes(4096))
    except OSError:
        pass
    os.ftruncate(fd, max(0, os.fstat(fd).st_size - leave))
    os.close(fd)


@pytest.mark.parametrize("leave, action", [
    (32 * 1024, "database write failed"),  # room for SQLite's -shm index, none for the write itself
    (0, "cannot read the database schema version"),  # not even the -shm: "disk I/O error" on the first read
])
def test_write_when_the_disk_is_full_exits_1_saying_so(small_disk, sqlite_env, leave, action):
    db = small_disk / "keyward.db"
    env = sqlite_env(db)
    assert _keyward("pool", "add", "first", env=env).returncode == 0
    _fill(small_disk, leave)
    result = _keyward("pool", "add", "second", env=env)
    assert result.returncode == 1, result.stderr
    _named(result.stderr, f"{action}: the disk holding the SQLite database {db} is full")


def test_write_when_another_writer_holds_the_lock_past_the_busy_timeout_exits_1_saying_so(
        tmp_path, kw_env, monkeypatch):
    import sqlite3

    db = tmp_path / "db" / "keyward.db"
    monkeypatch.setenv("KEYWARD_DATABASE_URL", f"sqlite:///{db}")
    assert CliRunner().invoke(cli, ["pool", "add", "first"]).exit_code == 0
    monkeypatch.setattr("keyward.storage.engine.BUSY_TIMEOUT_MS", 200)
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        result = CliRunner().invoke(cli, ["pool", "add", "second"])
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert result.exit_code == 1, result.output
    _named(result.output, f"database write failed: the SQLite database {db} stayed locked by another writer "
                          "past the busy timeout")


# PostgreSQL ---------------------------------------------------------------------------------------


def _admin(pg_url: str):
    from sqlalchemy import create_engine

    return create_engine(pg_url.split("?", 1)[0], isolation_level="AUTOCOMMIT")


def test_write_when_postgresql_terminates_the_session_exits_1_saying_so(pg_url, kw_env, monkeypatch):
    from sqlalchemy import text

    monkeypatch.setenv("KEYWARD_DATABASE_URL", pg_url)
    assert CliRunner().invoke(cli, ["pool", "add", "first"]).exit_code == 0
    admin = _admin(pg_url)
    schema = pg_url.rsplit("%3D", 1)[1]
    # The session that inserts a pool is terminated by the server in the middle of its write.
    with admin.connect() as conn:
        conn.execute(text(f"""
            CREATE FUNCTION "{schema}".end_session() RETURNS trigger LANGUAGE plpgsql AS
            $$ BEGIN PERFORM pg_terminate_backend(pg_backend_pid()); RETURN NEW; END $$;
            CREATE TRIGGER end_session BEFORE INSERT ON "{schema}".pools
            FOR EACH ROW EXECUTE FUNCTION "{schema}".end_session();
        """))
    admin.dispose()
    result = CliRunner().invoke(cli, ["pool", "add", "second"])
    assert result.exit_code == 1, result.output
    _named(result.output, "database write failed: the database server ended this connection",
           "terminating connection due to administrator command")


def test_read_when_postgresql_terminates_the_session_raises_storage_error_saying_so(pg_url):
    from sqlalchemy import text

    from keyward.storage import store as q
    from keyward.storage.store import Store

    store = Store.open(pg_url)
    admin = _admin(pg_url)
    try:
        with pytest.raises(StorageError, match="database read failed: the database server ended this connection"):
            with store.read() as s:
                pid = s.execute(text("SELECT pg_backend_pid()")).scalar()
                with admin.connect() as conn:
                    conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
                q.list_pools(s)
        with store.read() as s:  # the next read gets a fresh connection
            assert q.list_pools(s) == []
    finally:
        store.close()
        admin.dispose()


def test_read_when_the_database_was_dropped_raises_storage_error_naming_it(pg_url):
    from sqlalchemy import text

    from keyward.storage import store as q
    from keyward.storage.store import Store

    name = f"kw_dropped_{uuid.uuid4().hex[:8]}"
    admin = _admin(pg_url)
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    store = Store.open(pg_url.split("?", 1)[0].rsplit("/", 1)[0] + f"/{name}")
    try:
        with store.read() as s:
            q.list_pools(s)
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        with pytest.raises(StorageError, match=f'database read failed: .*database "{name}" does not exist'):
            with store.read() as s:
                q.list_pools(s)
    finally:
        store.close()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_write_when_the_database_user_lacks_privileges_exits_1_saying_so(pg_url, kw_env, monkeypatch):
    from sqlalchemy import text

    monkeypatch.setenv("KEYWARD_DATABASE_URL", pg_url)
    assert CliRunner().invoke(cli, ["pool", "add", "first"]).exit_code == 0
    role, schema = f"kw_reader_{uuid.uuid4().hex[:8]}", pg_url.rsplit("%3D", 1)[1]
    admin = _admin(pg_url)
    with admin.connect() as conn:
        conn.execute(text(f'CREATE ROLE "{role}" LOGIN'))
        conn.execute(text(f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"'))
        conn.execute(text(f'GRANT SELECT ON ALL TABLES IN SCHEMA "{schema}" TO "{role}"'))
    try:
        monkeypatch.setenv("KEYWARD_DATABASE_URL", pg_url.replace("postgres@", f"{role}@", 1))
        result = CliRunner().invoke(cli, ["pool", "add", "second"])
        assert result.exit_code == 1, result.output
        _named(result.output, "database write failed: the database user lacks a privilege keyward needs",
               "permission denied for table")
        listing = CliRunner().invoke(cli, ["pool", "list"])
        assert listing.exit_code == 0 and "first" in listing.output, listing.output
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP OWNED BY "{role}"'))
            conn.execute(text(f'DROP ROLE "{role}"'))
        admin.dispose()


def test_write_when_the_server_accepts_only_reads_exits_1_saying_so(pg_url, kw_env, monkeypatch):
    monkeypatch.setenv("KEYWARD_DATABASE_URL", pg_url)
    assert CliRunner().invoke(cli, ["pool", "add", "first"]).exit_code == 0
    monkeypatch.setenv("KEYWARD_DATABASE_URL", pg_url + "%20-cdefault_transaction_read_only%3Don")
    result = CliRunner().invoke(cli, ["pool", "add", "second"])
    assert result.exit_code == 1, result.output
    _named(result.output, "database write failed: the database server accepts only reads",
           "read-only transaction")


@pytest.mark.parametrize("url, words", [
    ("postgresql://postgres@127.0.0.1:1/test", "the database server refused the connection"),
    ("postgresql://postgres@127.0.0.1:5432/kw_no_such_database", 'database "kw_no_such_database" does not exist'),
    ("postgresql://kw_no_such_role@127.0.0.1:5432/test", 'role "kw_no_such_role" does not exist'),
    ("mysql://someone@127.0.0.1/keyward", "no database driver for mysql:// (MySQLdb is not installed)"),
])
def test_command_when_the_database_cannot_be_reached_exits_1_saying_why(pg_url, kw_env, monkeypatch, url, words):
    monkeypatch.setenv("KEYWARD_DATABASE_URL", url)  # pg_url: skipped where no PostgreSQL runs
    result = CliRunner().invoke(cli, ["pool", "list"])
    assert result.exit_code == 1, result.output
    _named(result.output, words)


# Words for causes a test cannot produce on demand: each driver line gets its meaning. -------------


def _operational(message: str):
    from sqlalchemy.exc import OperationalError

    return OperationalError("UPDATE keys SET secret = :s", {"s": "x"}, Exception(message))


@pytest.mark.parametrize("driver_says, meaning", [
    ("consuming input failed: server closed the connection unexpectedly", "connection to the database server was lost"),
    ("could not receive data from server: Connection reset by peer", "connection to the database server was lost"),
    ("the connection is closed", "connection to the database server was lost"),
    ("FATAL:  sorry, too many clients already; too many connections", "no free connection slots"),
    ("FATAL:  the database system is starting up", "still starting up"),
    ("could not extend file \"base/1/2\": No space left on device", "the database server's disk is full"),
    ("database disk image is malformed", "the SQLite database file /data/k.db is corrupt"),
    ("unable to open database file", "SQLite cannot open the file /data/k.db"),
])
def test_describe_when_the_driver_names_a_known_cause_says_what_it_means(driver_says, meaning):
    error = database_failure(_operational(driver_says), "database write failed", "sqlite:////data/k.db")
    assert isinstance(error, StorageError)
    assert str(error).startswith("database write failed: ") and meaning in str(error)
    assert driver_says.splitlines()[0][:40] in str(error)


def test_describe_without_a_url_leaves_the_file_out():
    assert describe_database_error(_operational("attempt to write a readonly database")).startswith(
        "the SQLite database is read-only to this user")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=400), st.sampled_from(["", "attempt to write a readonly database", "permission denied"]))
@example("x" * 288, "")  # the line is cut at 300 characters: through the key, unless redacted first
def test_describe_any_driver_message_is_one_redacted_line_without_the_statement(text, cause):
    key = fake_auth_key()
    line = describe_database_error(_operational(f"{cause} {text} {key}\nDETAIL: {key}"), "sqlite:////data/k.db")
    assert "\n" not in line and key[:10] not in line and "UPDATE keys" not in line
