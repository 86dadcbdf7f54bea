"""Concurrent first commands on a brand-new SQLite file: every one creates or waits, none fails."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

KEYWARD = str(Path(sys.executable).parent / "keyward")


def test_concurrent_first_commands_on_a_new_sqlite_file_all_succeed(tmp_path):
    config = tmp_path / "keyward.toml"
    config.write_text(f'database = "sqlite:///{tmp_path}/new/keyward.db"\n')
    env = {**os.environ, "KEYWARD_STATE_DIR": str(tmp_path / "state"),
           "KEYWARD_RUNTIME_DIR": str(tmp_path / "run"), "HOME": str(tmp_path)}
    commands = [["pool", "list"], ["project", "list"], ["key", "list"]] * 2
    procs = [subprocess.Popen([KEYWARD, "--config", str(config), *cmd], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for cmd in commands]
    results = [(p.wait(120), p.stderr.read()) for p in procs]
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    assert [rc for rc, _ in results] == [0] * len(commands), [err for _, err in results]
