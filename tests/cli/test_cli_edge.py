"""The one edge where escaping exceptions get a name: real processes with files that used to
crash commands, and the mapping itself."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from keyward.errors import InternalError, StorageError, UsageError
from keyward.failures import named
from support.fakes import fake_auth_key

KEYWARD = str(Path(sys.executable).parent / "keyward")
BAD_FILES = [
    '[rotation]\nmax_age = "²"\n',
    '[rotation]\nmax_age = "99999999999d"\n',
    "[rotation]\nmax_age = " + "9" * 5000 + "\n",
    "x = " + "[" * 3000 + "]" * 3000 + "\n",
    'database = "bogus://x"\n',
    '[projects.alpha-one12]\npool = "default"\n[projects.alpha-one12.limits."gemini-2.5-flash"]\nrpm = 9223372036854775807\n',
]


@pytest.mark.parametrize("text", BAD_FILES, ids=range(len(BAD_FILES)))
@pytest.mark.parametrize("command", [["current"], ["pool", "list"]])
def test_files_that_crashed_commands_exit_2_naming_file_and_line(tmp_path, text, command):
    config = tmp_path / "keyward.toml"
    config.write_text(text)
    env = {**os.environ, "KEYWARD_STATE_DIR": str(tmp_path / "s"),
           "KEYWARD_RUNTIME_DIR": str(tmp_path / "r"), "HOME": str(tmp_path)}
    result = subprocess.run([KEYWARD, "--config", str(config), *command], capture_output=True,
                            text=True, timeout=60, env=env)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and f"{config}:" in result.stderr


@pytest.mark.parametrize("command", [["db", "status"], ["db", "upgrade"], ["db", "encrypt"], ["db", "rekey"],
                                     ["pool", "list"], ["status"]])
def test_a_database_file_that_is_not_sqlite_is_named_by_every_command(tmp_path, command):
    database = tmp_path / "not-a-database.db"
    database.write_bytes(b"garbage" * 1000)
    config = tmp_path / "keyward.toml"
    config.write_text(f'database = "sqlite:///{database}"\n')
    env = {**os.environ, "KEYWARD_STATE_DIR": str(tmp_path / "s"),
           "KEYWARD_RUNTIME_DIR": str(tmp_path / "r"), "HOME": str(tmp_path)}
    result = subprocess.run([KEYWARD, "--config", str(config), *command], capture_output=True,
                            text=True, timeout=60, env=env)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert str(database) in result.stderr and "not a SQLite database" in result.stderr


def test_named_errors_are_redacted_and_say_what_happened():
    secret = fake_auth_key()
    assert isinstance(named(RecursionError()), UsageError)
    error = named(ValueError(f"weird {secret}"))
    assert isinstance(error, InternalError) and secret not in str(error) and secret[-4:] in str(error)
    from sqlalchemy.exc import OperationalError

    db = named(OperationalError("SELECT 1", {}, Exception("file is not a database")))
    assert isinstance(db, StorageError) and "not a SQLite database" in str(db)


def test_an_unexpected_exception_in_a_command_is_named_without_a_traceback(monkeypatch):
    from click.testing import CliRunner

    from keyward.cli.app import cli

    secret = fake_auth_key()

    def boom(*_a, **_k):
        raise LookupError(f"something held {secret}")

    monkeypatch.setattr("keyward.context.Context.load", boom)
    result = CliRunner().invoke(cli, ["pool", "list"])
    assert result.exit_code == 1 and "LookupError" in result.output
    assert secret not in result.output and "Traceback" not in result.output
