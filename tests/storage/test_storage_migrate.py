from __future__ import annotations

import os
import stat

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

import keyward
from keyward.errors import SchemaOutOfDate, SchemaTooNew
from keyward.storage import migrate, tables
from keyward.storage.engine import make_engine
from keyward.storage.models import Base
from keyward.storage.store import Store


@pytest.fixture
def engine(any_db_url):
    engine = make_engine(any_db_url)
    yield engine
    engine.dispose()


def test_upgrade_when_database_is_fresh_reaches_head(engine):
    before, after = migrate.run_upgrade(engine)
    assert before is None
    assert after == migrate.head_revision()
    with engine.connect() as conn:
        version = conn.execute(text("SELECT value FROM meta WHERE name='keyward_version'")).scalar()
    assert version == keyward.__version__


def test_tables_when_migrated_match_migrations_without_pending_diff(engine):
    migrate.run_upgrade(engine)
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(ctx, tables.metadata)
    assert diff == []


def test_models_when_mapped_use_the_core_tables_and_every_column():
    # The Core tables the read-only commands query are the ORM's tables, column for column, so the
    # test above covers what both read.
    assert Base.metadata is tables.metadata
    for mapper in Base.registry.mappers:
        table = mapper.local_table
        assert tables.metadata.tables[table.name] is table
        assert all(any(mapped is column for mapped in mapper.columns) for column in table.columns), table.name
    assert {m.local_table.name for m in Base.registry.mappers} == set(tables.metadata.tables)


def test_upgrade_when_run_twice_is_a_no_op(engine):
    migrate.run_upgrade(engine)
    before, after = migrate.run_upgrade(engine)
    assert before == after == migrate.head_revision()


def test_open_when_database_is_newer_refuses_naming_both_versions(engine, any_db_url):
    migrate.run_upgrade(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
        conn.execute(text("UPDATE meta SET value = '7.3.0' WHERE name = 'keyward_version'"))
    with pytest.raises(SchemaTooNew) as info:
        Store.open(any_db_url)
    message = str(info.value)
    assert "9999" in message and "keyward 7.3.0" in message
    assert keyward.__version__ in message and migrate.head_revision() in message


def test_open_when_upgrade_not_allowed_says_what_to_run(sqlite_url):
    with pytest.raises(SchemaOutOfDate) as info:
        Store.open(sqlite_url, upgrade=False)
    assert "keyward db upgrade" in str(info.value)


def test_sqlite_file_when_created_is_private(tmp_path):
    url = f"sqlite:///{tmp_path / 'state' / 'keyward.db'}"
    store = Store.open(url)
    with store.write() as s:
        s.execute(text("SELECT 1"))
    store.close()
    assert stat.S_IMODE(os.stat(tmp_path / "state").st_mode) == 0o700
    for name in ("keyward.db", "keyward.db-wal", "keyward.db-shm"):
        path = tmp_path / "state" / name
        if path.exists():
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, name


def test_sqlite_when_opened_uses_wal_and_busy_timeout(sqlite_url):
    store = Store.open(sqlite_url)
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 1000
    store.close()


def test_schema_head_constant_when_compared_to_alembic_is_the_head():
    assert migrate.SCHEMA_HEAD == migrate.head_revision()


def test_upgrade_to_summaries_when_usage_exists_fills_them_from_the_buckets(tmp_path):
    from datetime import date, datetime, timedelta, timezone

    from alembic import command

    engine = make_engine(f"sqlite:///{tmp_path / 'k.db'}")
    with engine.begin() as conn:
        command.upgrade(migrate._alembic_config(conn), "0003_sealed_secrets")
        minute = datetime.now(timezone.utc).replace(second=0, microsecond=0, tzinfo=None)
        conn.execute(text("INSERT INTO pools (id, name, model, origin, all_exhausted, created_at) "
                          "VALUES (1, 'main', 'm', 'cli', 0, :at)"), {"at": minute})
        conn.execute(text("INSERT INTO projects (id, project_id, pool_id, managed, allowed_ips, origin, "
                          "rotation_failures, created_at) VALUES (7, 'p-one', 1, 0, '', 'cli', 0, :at)"),
                     {"at": minute})
        for at, source, n in ((minute, "local", 3), (minute, "monitoring", 5),
                              (minute - timedelta(minutes=1), "local", 2),
                              (minute - timedelta(minutes=2), "local", 9)):
            conn.execute(text("INSERT INTO usage_minutes VALUES (7, 'm', :at, :source, :n, :t, 0)"),
                         {"at": at, "source": source, "n": n, "t": 10 * n})
        for day, n in ((date(2026, 3, 1), 50), (date(2026, 3, 2), 19)):
            conn.execute(text("INSERT INTO usage_days VALUES (7, 'm', :day, 'effective', :n, 0, 0)"),
                         {"day": day, "n": n})
    migrate.run_upgrade(engine)
    with engine.connect() as conn:
        row = conn.execute(text("SELECT requests, tokens, prev_requests, prev_tokens, day, day_requests "
                                "FROM usage_summaries WHERE project_pk = 7 AND model = 'm'")).one()
    engine.dispose()
    assert tuple(row) == (5, 50, 2, 20, "2026-03-02", 19)
