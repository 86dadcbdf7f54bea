"""A command that opens an up-to-date database checks its schema with one query: no Alembic, and
nothing of Google's clients or the scheduler that it does not use. Commands that only read (the
listings, `status` without a daemon) read through Core: importing the ORM and the models would cost
them more than everything else they do."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

HEAVY = ("alembic", "googleapiclient", "apscheduler", "keyward.google", "keyward.rotation", "cryptography")
ORM = ("sqlalchemy.orm", "keyward.storage.models", "keyward.storage.store", "keyward.leadership", "keyward.usage")


def _env(tmp_path):
    env = {**os.environ, "KEYWARD_STATE_DIR": str(tmp_path / "state"), "KEYWARD_RUNTIME_DIR": str(tmp_path / "run"),
           "XDG_CONFIG_HOME": str(tmp_path / "xdg"), "HOME": str(tmp_path)}
    env.pop("KEYWARD_CONFIG", None)
    return env


def _imported(env, argv: list[str], prefixes: tuple[str, ...]) -> tuple[str, str]:
    """Run `keyward ARGV` in a fresh interpreter; return (its stdout, the sorted imported modules
    under `prefixes`, top-level names for third-party ones)."""
    probe = (f"import sys\nfrom keyward.cli import main\ntry:\n    main({argv!r})\nexcept SystemExit:\n"
             f"    pass\nsys.stderr.write(repr(sorted({{m.split('.')[0] if not m.startswith(('keyward', 'sqlalchemy')) "
             f"else m for m in sys.modules if m.startswith({prefixes!r})}})))\n")
    result = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60)
    return result.stdout, result.stderr


def test_pool_list_when_schema_is_current_imports_only_what_it_uses(tmp_path):
    env = _env(tmp_path)
    first = subprocess.run([sys.executable, "-m", "keyward", "pool", "list"], env=env, capture_output=True,
                           text=True, timeout=60)  # creates and upgrades the database
    assert first.returncode == 0, first.stderr
    out, imported = _imported(env, ["pool", "list"], HEAVY)
    assert "default" in out
    assert imported == "[]"


@pytest.mark.parametrize("argv, shows", [
    (["pool", "list"], "default"),
    (["project", "list"], "PROJECT"),
    (["key", "list"], "KEY"),
    (["key", "list", "--all"], "KEY"),
    (["status", "--json"], '"schema_version":1'),
    (["status", "--no-color"], "keyward status at"),
])
def test_read_commands_when_no_daemon_runs_read_without_the_orm(tmp_path, argv, shows):
    env = _env(tmp_path)
    first = subprocess.run([sys.executable, "-m", "keyward", "pool", "list"], env=env, capture_output=True,
                           text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    out, imported = _imported(env, argv, ORM + (("click",) if argv[0] == "status" else ()))
    assert shows in out
    assert imported == "[]"  # and status, which needs no option parsing here, skips click too
