"""A command that opens an up-to-date database checks its schema with one query: no Alembic, and
nothing of Google's clients or the scheduler that it does not use."""

from __future__ import annotations

import os
import subprocess
import sys

HEAVY = ("alembic", "googleapiclient", "apscheduler", "keyward.google", "keyward.rotation", "cryptography")


def test_pool_list_when_schema_is_current_imports_only_what_it_uses(tmp_path):
    env = {**os.environ, "KEYWARD_STATE_DIR": str(tmp_path / "state"), "KEYWARD_RUNTIME_DIR": str(tmp_path / "run"),
           "XDG_CONFIG_HOME": str(tmp_path / "xdg"), "HOME": str(tmp_path)}
    env.pop("KEYWARD_CONFIG", None)
    first = subprocess.run([sys.executable, "-m", "keyward", "pool", "list"], env=env, capture_output=True,
                           text=True, timeout=60)  # creates and upgrades the database
    assert first.returncode == 0, first.stderr
    probe = ("import sys\nfrom keyward.cli import main\ntry:\n    main(['pool', 'list'])\nexcept SystemExit:\n"
             f"    pass\nsys.stderr.write(repr(sorted({{m.split('.')[0] if not m.startswith('keyward') else m "
             f"for m in sys.modules if m.startswith({HEAVY!r})}})))\n")
    result = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60)
    assert "default" in result.stdout
    assert result.stderr == "[]"
