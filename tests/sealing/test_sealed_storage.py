"""Key strings at rest in real databases: what a dump, a copied file or a tampered row reveals.

Every test runs on SQLite and PostgreSQL. Dumps are taken with the real tools (`sqlite3 .dump`,
`pg_dump`), and searched for every key string and every 16-character piece of one.
"""

from __future__ import annotations

import shutil
import subprocess
from datetime import timedelta
from urllib.parse import unquote

import pytest
from sqlalchemy import select, text

from keyward import at_rest, inventory
from keyward import master_key as mk
from keyward.errors import MasterKeyError, SecretTampered
from keyward.rotation import service as rotation
from keyward.sealing import is_sealed
from keyward.storage import store as q
from keyward.storage.engine import sqlite_path
from keyward.storage.models import Event, Key
from support.fakes import fake_auth_key

FRAGMENT = 16


def dump(url: str) -> str:
    """The database as its own dump tool writes it."""
    path = sqlite_path(url)
    if path is not None:
        assert shutil.which("sqlite3"), "the sqlite3 command-line tool is needed"
        return subprocess.run(["sqlite3", str(path), ".dump"], check=True, capture_output=True, text=True).stdout
    assert shutil.which("pg_dump"), "pg_dump is needed"
    schema = unquote(url.split("search_path%3D", 1)[1])
    return subprocess.run(["pg_dump", "-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-n", schema],
                          check=True, capture_output=True, text=True).stdout


def raw_files(url: str) -> bytes:
    """Every byte of a SQLite database on disk (the file and its write-ahead log), as a copy would hold."""
    path = sqlite_path(url)
    data = b""
    for part in (path, path.with_name(path.name + "-wal")):
        if part.exists():
            data += part.read_bytes()
    return data


def assert_hidden(secrets: list[str], haystack: str | bytes, what: str) -> None:
    for secret in secrets:
        for start in range(len(secret) - FRAGMENT + 1):
            piece = secret[start:start + FRAGMENT]
            needle = piece.encode() if isinstance(haystack, bytes) else piece
            assert needle not in haystack, f"{what} holds a 16-character piece of a key string"


def stored_secrets(ctx) -> list[str]:
    with ctx.store.read() as s:
        return [k.secret for k in q.list_keys(s) if k.secret]


def sealed_values(ctx) -> dict[str, str | None]:
    with ctx.store.engine.connect() as conn:
        return dict(conn.execute(select(Key.key_id, Key.sealed)).all())


def test_dumps_when_keys_added_rotated_and_rekeyed_hold_no_key_string(any_db_url, tmp_path, make_ctx, emu,
                                                                       deps, clock):
    first, _ = mk.init_file(tmp_path / "master.key", add=False)
    ctx = make_ctx(any_db_url)
    manual = fake_auth_key()
    inventory.add_key(ctx, "gamma-proj", manual)
    for project in ("alpha-proj", "beta-proj"):
        rotation.rotate_project(ctx, project, deps=deps)
    clock.advance(timedelta(days=12))
    rotation.rotate_project(ctx, "alpha-proj", deps=deps)

    second, _ = mk.init_file(tmp_path / "master.key", add=True)
    ctx = make_ctx(any_db_url)
    moved = at_rest.rekey(ctx)
    clock.advance(timedelta(days=12))
    rotation.rotate_project(ctx, "beta-proj", deps=deps)
    rotation.rotate_project(ctx, "alpha-proj", force=True, deps=deps)

    secrets = stored_secrets(ctx)
    assert manual in secrets and len(secrets) >= 6
    assert all(emu.key_string_valid(s) for s in secrets if s != manual)
    assert moved.moved == {first.id: 4} and moved.master_id == second.id
    assert all(is_sealed(v) for v in sealed_values(ctx).values())
    assert at_rest.inspect(ctx).counts == {second.id: len(secrets)}
    assert_hidden(secrets, dump(any_db_url), "the dump")
    if sqlite_path(any_db_url) is not None:
        assert_hidden(secrets, raw_files(any_db_url), "the database file")


def test_encrypt_when_database_was_plain_seals_in_place_and_journals_without_secrets(any_db_url, tmp_path,
                                                                                      make_ctx, emu):
    plain_ctx = make_ctx(any_db_url)
    secrets = [fake_auth_key() for _ in range(3)]
    for secret, project in zip(secrets, ("alpha-proj", "beta-proj", "gamma-proj")):
        inventory.add_key(plain_ctx, project, secret)
    assert sorted(v for v in sealed_values(plain_ctx).values()) == sorted(secrets)  # plain, as before
    plain_ctx.close()

    master, _ = mk.init_file(tmp_path / "master.key", add=False)
    ctx = make_ctx(any_db_url)
    result = at_rest.encrypt(ctx)

    assert result.moved == {"plain": 3}
    assert sorted(stored_secrets(ctx)) == sorted(secrets)
    assert_hidden(secrets, dump(any_db_url), "the dump")
    if sqlite_path(any_db_url) is not None:
        assert_hidden(secrets, raw_files(any_db_url), "the database file")
    with ctx.store.read() as s:
        events = s.scalars(select(Event).where(Event.kind == "db.encrypt")).all()
    assert [e.message for e in events] == [
        f"sealed 3 secret(s) with master key {master.id} (3 from plain text); 0 already were"]
    assert at_rest.encrypt(ctx).moved == {}  # running it again changes nothing


def test_rekey_journals_the_move_without_secrets_or_key_material(any_db_url, tmp_path, make_ctx, emu):
    old, _ = mk.init_file(tmp_path / "master.key", add=False)
    ctx = make_ctx(any_db_url)
    secret = fake_auth_key()
    inventory.add_key(ctx, "gamma-proj", secret)
    new, _ = mk.init_file(tmp_path / "master.key", add=True)
    at_rest.rekey(make_ctx(any_db_url))
    with ctx.store.read() as s:
        events = s.scalars(select(Event).where(Event.kind == "db.rekey")).all()
    assert [e.message for e in events] == [
        f"sealed 1 secret(s) with master key {new.id} (1 from master key {old.id}); 0 already were"]
    material = (tmp_path / "master.key").read_text()
    assert secret not in dump(any_db_url)
    for line in material.splitlines()[1:]:
        assert line not in dump(any_db_url)


def test_read_when_one_bit_of_a_sealed_value_flipped_names_the_key_and_changes_nothing(any_db_url, tmp_path,
                                                                                       make_ctx, emu):
    mk.init_file(tmp_path / "master.key", add=False)
    ctx = make_ctx(any_db_url)
    view = inventory.add_key(ctx, "gamma-proj", fake_auth_key())
    value = sealed_values(ctx)[view.key_id]
    head, body = value.rsplit(":", 1)
    flipped = body[:10] + chr(ord(body[10]) ^ 0x01) + body[11:]
    with ctx.store.engine.begin() as conn:
        conn.execute(text("UPDATE keys SET secret = :v WHERE key_id = :k"), {"v": f"{head}:{flipped}", "k": view.key_id})

    fresh = make_ctx(any_db_url)
    with pytest.raises(SecretTampered, match=f"key {view.key_id}"):
        with fresh.store.read() as s:
            q.get_key(s, view.key_id).secret
    with pytest.raises(SecretTampered, match=f"key {view.key_id}"):
        at_rest.check(fresh)
    other = inventory.add_key(fresh, "alpha-proj", fake_auth_key())
    mk.init_file(tmp_path / "master.key", add=True)
    with pytest.raises(SecretTampered, match=f"key {view.key_id}"):
        at_rest.rekey(make_ctx(any_db_url))
    assert sealed_values(fresh)[other.key_id] == sealed_values(ctx)[other.key_id]  # the rekey rolled back
    assert sealed_values(fresh)[view.key_id] == f"{head}:{flipped}"  # nothing rewritten


def test_sealed_value_when_moved_to_another_row_does_not_open(any_db_url, tmp_path, make_ctx, emu):
    mk.init_file(tmp_path / "master.key", add=False)
    ctx = make_ctx(any_db_url)
    a = inventory.add_key(ctx, "alpha-proj", fake_auth_key())
    b = inventory.add_key(ctx, "beta-proj", fake_auth_key())
    moved = sealed_values(ctx)[a.key_id]
    with ctx.store.engine.begin() as conn:
        conn.execute(text("UPDATE keys SET secret = :v WHERE key_id = :k"), {"v": moved, "k": b.key_id})
    with pytest.raises(SecretTampered, match=f"key {b.key_id}.*copied from another row"):
        with make_ctx(any_db_url).store.read() as s:
            q.get_key(s, b.key_id).secret


def test_add_key_when_master_key_gone_refuses_instead_of_storing_plain_text(any_db_url, tmp_path, make_ctx,
                                                                            emu):
    mk.init_file(tmp_path / "master.key", add=False)
    inventory.add_key(make_ctx(any_db_url), "alpha-proj", fake_auth_key())
    (tmp_path / "master.key").unlink()
    ctx = make_ctx(any_db_url)
    with pytest.raises(MasterKeyError, match=f"no master key was found.*{tmp_path / 'master.key'}"):
        inventory.add_key(ctx, "beta-proj", fake_auth_key())
    with pytest.raises(MasterKeyError, match="looked in"):
        at_rest.check(ctx)
    assert len(sealed_values(ctx)) == 1


def test_add_key_when_another_master_key_found_refuses_to_mix_keys(any_db_url, tmp_path, make_ctx, emu):
    mk.init_file(tmp_path / "master.key", add=False)
    inventory.add_key(make_ctx(any_db_url), "alpha-proj", fake_auth_key())
    (tmp_path / "master.key").unlink()
    other, _ = mk.init_file(tmp_path / "master.key", add=False)
    ctx = make_ctx(any_db_url)
    with pytest.raises(MasterKeyError, match=f"not among those found \\({other.id} from"):
        inventory.add_key(ctx, "beta-proj", fake_auth_key())
    with pytest.raises(MasterKeyError, match="not among the master keys found"):
        at_rest.check(ctx)


def _before_sealing() -> str:
    from keyward.storage.migrate import _script

    return _script().get_revision("0003_sealed_secrets").down_revision


def _downgrade_before_sealing(url: str) -> None:
    """Take the database back to the revision before sealing, as an older keyward left it."""
    from alembic import command

    from keyward.storage.engine import make_engine
    from keyward.storage.migrate import _alembic_config

    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            command.downgrade(_alembic_config(conn), _before_sealing())
    finally:
        engine.dispose()


def test_upgrade_to_0003_when_master_key_present_seals_a_plain_database_in_place(any_db_url, tmp_path,
                                                                                  make_ctx, emu, config_path):
    from click.testing import CliRunner

    from keyward.cli.app import cli

    plain = make_ctx(any_db_url)
    secrets = [fake_auth_key(), fake_auth_key()]
    inventory.add_key(plain, "alpha-proj", secrets[0])
    inventory.add_key(plain, "beta-proj", secrets[1])
    plain.close()
    _downgrade_before_sealing(any_db_url)  # the database as a keyward from before sealing left it
    master, _ = mk.init_file(tmp_path / "master.key", add=False)

    result = CliRunner(env={"KEYWARD_DATABASE_URL": any_db_url}).invoke(
        cli, ["--config", str(config_path), "db", "upgrade"], catch_exceptions=False)

    assert result.exit_code == 0, result.output
    assert f"upgraded from {_before_sealing()} to" in result.output
    ctx = make_ctx(any_db_url)
    assert at_rest.inspect(ctx).counts == {master.id: 2}
    assert sorted(stored_secrets(ctx)) == sorted(secrets)
    assert_hidden(secrets, dump(any_db_url), "the dump")


def test_upgrade_to_0003_when_no_master_key_keeps_plain_text_readable(any_db_url, make_ctx, emu):
    plain = make_ctx(any_db_url)
    secret = fake_auth_key()
    inventory.add_key(plain, "alpha-proj", secret)
    plain.close()
    _downgrade_before_sealing(any_db_url)
    ctx = make_ctx(any_db_url)  # opening upgrades
    assert stored_secrets(ctx) == [secret]
    assert at_rest.inspect(ctx).counts == {"plain": 1}


def test_reload_when_master_key_file_changes_seals_with_the_new_file(sqlite_url, tmp_path, make_ctx, emu,
                                                                     config_path):
    from keyward.config import load_config

    ctx = make_ctx(sqlite_url)
    ctx.store  # opened under the first config, with no master key anywhere
    other = tmp_path / "keys" / "other.key"
    master, _ = mk.init_file(other, add=False)
    config_path.write_text(f'master_key_file = "{other}"\n' + config_path.read_text())
    reloaded = ctx.with_config(load_config(config_path, env={"KEYWARD_DATABASE_URL": sqlite_url}))
    assert reloaded.store is ctx.store
    inventory.add_key(reloaded, "gamma-proj", fake_auth_key())
    assert at_rest.inspect(reloaded).counts == {master.id: 1}
