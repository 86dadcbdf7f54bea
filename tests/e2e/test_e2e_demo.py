"""`keyward demo` as a user runs it: a real subprocess, the emulator, the daemon, traffic."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from keyward.config import load_config
from keyward.context import Context
from keyward.storage import store as q


def test_demo_for_20s_exits_0_having_switched_keys_and_rotated(tmp_path, kw_env):
    state = tmp_path / "demo"
    result = subprocess.run(
        [sys.executable, "-m", "keyward", "demo", "--duration", "20s", "--quiet", "--state-dir", str(state)],
        capture_output=True, text=True, env={**os.environ, **kw_env}, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "state kept in" in result.stdout and "keyward --config" in result.stdout
    with Context(load_config(state / "keyward.toml")) as ctx, ctx.store.read() as s:
        kinds = [e.kind for e in q.recent_events(s, 1000)]
        keys = q.list_keys(s)
        secrets = [k.secret for k in keys if k.secret]
    assert kinds.count("selection.switched") >= 1
    assert kinds.count("rotation.done") >= 1
    # the hand-made standard key was migrated to an auth key
    assert any(k.kind == "standard" and k.state in ("previous", "retired") for k in keys)
    log = (state / "daemon.log").read_text()
    for secret in secrets:  # never a key string in what the demo or the daemon printed
        assert secret not in result.stdout and secret not in log
    assert not _processes_mentioning(str(state)), "the demo left a process running"


def _processes_mentioning(text: str) -> list[int]:
    """Pids whose command line mentions `text` (read from /proc; no procps needed)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                pass
    return found
