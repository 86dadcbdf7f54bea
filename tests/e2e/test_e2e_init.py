"""`keyward init`, then `keyward run --once` on the file it wrote, unedited, against the emulator."""

from __future__ import annotations

import os
import subprocess
import sys

from keyward.emulator import Emulator


def test_init_then_run_once_with_no_edits_exits_0_and_touches_no_sample_project(tmp_path, kw_env):
    path = tmp_path / "conf" / "keyward.toml"
    emulator = Emulator().start()
    try:
        env = {**os.environ, **kw_env, "KEYWARD_GOOGLE_EMULATOR_HOST": emulator.address}
        init = subprocess.run([sys.executable, "-m", "keyward", "init", "--path", str(path)],
                              capture_output=True, text=True, env=env, timeout=60)
        assert init.returncode == 0, init.stderr

        run = subprocess.run([sys.executable, "-m", "keyward", "--config", str(path), "run", "--once"],
                             capture_output=True, text=True, env=env, timeout=120)
        snapshot = emulator.snapshot()
    finally:
        emulator.stop()

    assert run.returncode == 0, run.stderr
    assert "my-project" not in run.stdout + run.stderr and "Traceback" not in run.stderr
    assert not snapshot.get("keys")  # nothing was created at "Google"
    text = path.read_text()
    assert str(tmp_path) not in text and kw_env["KEYWARD_RUNTIME_DIR"] not in text
