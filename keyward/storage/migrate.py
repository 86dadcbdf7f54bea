"""Schema versions: upgrade through Alembic, refuse a database written by a newer keyward.

The revisions live in the top-level `migrations` package, which ships inside the wheel, so an installed
keyward upgrades its own database without a source checkout. Upgrades run inside one write
transaction (BEGIN IMMEDIATE on SQLite, an advisory transaction lock on PostgreSQL), so two processes
starting at once never both apply the same revision.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

import keyward
from keyward.errors import SchemaOutOfDate, SchemaTooNew

log = logging.getLogger(__name__)

# An arbitrary constant naming keyward's migration lock among PostgreSQL advisory locks.
_PG_MIGRATION_LOCK = 0x6B657977


def _script_location() -> str:
    try:
        from keyward import migrations  # installed: the wheel maps migrations/ to keyward.migrations
    except ImportError:  # a source checkout on sys.path without installing
        import migrations
    return str(Path(migrations.__file__).parent)


def _alembic_config(connection: Connection | None = None, sealer=None):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", _script_location())
    if connection is not None:
        cfg.attributes["connection"] = connection
    # Data revisions that seal key strings (0003_sealed_secrets) use it when a master key exists.
    cfg.attributes["sealer"] = sealer
    return cfg


def _script():
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config())


def head_revision() -> str:
    return _script().get_current_head()


def known_revisions() -> set[str]:
    return {rev.revision for rev in _script().walk_revisions()}


def current_revision(connection: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


def _written_by(connection: Connection) -> str:
    try:
        row = connection.execute(
            text("SELECT value FROM meta WHERE name = 'keyward_version'")
        ).first()
    except SQLAlchemyError:
        return "an unknown version"
    return f"keyward {row[0]}" if row else "an unknown version"


def status(engine: Engine) -> tuple[str | None, str]:
    """Return (the database's revision, this keyward's head revision)."""
    with engine.connect() as conn:
        return current_revision(conn), head_revision()


# The newest revision in migrations/versions. Every command checks the database against it, so it
# is a constant: reading it from the scripts means importing Alembic, which costs more than the rest
# of `keyward status`. A test keeps it equal to Alembic's head.
SCHEMA_HEAD = "0003_sealed_secrets"


def _stored_revision(engine: Engine) -> str | None:
    """The database's revision by plain SQL, or None when there is no alembic_version table yet."""
    from keyward.storage.engine import READ_ONLY

    try:  # a deferred read: checking the version never queues behind another process's write
        with engine.connect().execution_options(**{READ_ONLY: True}) as conn:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except SQLAlchemyError:
        return None


def ensure_current(engine: Engine, *, upgrade: bool = True, sealer=None) -> None:
    """Make sure the schema is this keyward's; upgrade it when allowed.

    Raise SchemaTooNew when the database carries a revision this keyward does not know, and
    SchemaOutOfDate when it is older and `upgrade` is False, naming the command to run.
    """
    if _stored_revision(engine) == SCHEMA_HEAD:
        return
    try:
        with engine.connect() as conn:
            rev = current_revision(conn)
            head = head_revision()
            if rev == head:
                return
            if rev is not None and rev not in known_revisions():
                raise SchemaTooNew(
                    f"the database is at schema revision {rev}, written by {_written_by(conn)}; "
                    f"this keyward {keyward.__version__} knows revisions up to {head}. "
                    "Upgrade keyward, or point it at another database."
                )
    except SQLAlchemyError as exc:
        from keyward.storage.failures import database_failure

        raise database_failure(exc, "cannot read the database schema version", engine.url) from exc
    if not upgrade:
        raise SchemaOutOfDate(
            f"the database is at schema revision {rev or 'none'}, this keyward needs {head}: "
            "run `keyward db upgrade`"
        )
    run_upgrade(engine, sealer)


def run_upgrade(engine: Engine, sealer=None) -> tuple[str | None, str]:
    """Apply every pending revision; return (revision before, revision after).

    With a `sealer` holding a master key, the revision that introduces sealing also seals every
    key string still stored in plain text, in the same transaction.
    """
    from alembic import command

    try:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
            before = current_revision(conn)
            if before is not None and before not in known_revisions():
                raise SchemaTooNew(
                    f"the database is at schema revision {before}, written by {_written_by(conn)}; "
                    f"this keyward {keyward.__version__} knows revisions up to {head_revision()}"
                )
            command.upgrade(_alembic_config(conn, sealer), "head")
            after = current_revision(conn)
            _record_version(conn)
    except SQLAlchemyError as exc:
        from keyward.storage.failures import database_failure

        raise database_failure(exc, "database upgrade failed", engine.url) from exc
    if before != after:
        log.info("database schema upgraded from %s to %s", before or "empty", after)
    return before, after


def _record_version(conn: Connection) -> None:
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    updated = conn.execute(
        text("UPDATE meta SET value = :v, updated_at = :t WHERE name = 'keyward_version'"),
        {"v": keyward.__version__, "t": now},
    ).rowcount
    if not updated:
        conn.execute(
            text("INSERT INTO meta (name, value, updated_at) VALUES ('keyward_version', :v, :t)"),
            {"v": keyward.__version__, "t": now},
        )
