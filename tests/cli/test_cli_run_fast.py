"""`keyward run` without click (keyward.cli.run_fast) says what the click path says, and leaves the
rest to click."""

from __future__ import annotations

import subprocess
import sys

import pytest

from keyward.cli.run_fast import fast_main


def _keyward(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "keyward", *args], env=env, capture_output=True,
                          text=True, timeout=60)


@pytest.mark.parametrize("text", [None, "[pools.x]\nbogus = 1\n"])
def test_run_when_config_is_missing_or_wrong_fails_like_the_click_path(tmp_path, kw_env, text):
    import os

    config = tmp_path / "keyward.toml"
    if text is not None:
        config.write_text(text, encoding="utf-8")
    env = {**os.environ, **kw_env}
    fast = _keyward("--config", str(config), "run", env=env)
    # `run --once` goes through click, and checks the configuration the same way first.
    slow = _keyward("--config", str(config), "run", "--once", env=env)
    assert fast.returncode == slow.returncode == 2
    assert fast.stderr == slow.stderr and fast.stderr.startswith("keyward: error: ")
    assert str(config) in fast.stderr


@pytest.mark.parametrize("args", [["run", "--once"], ["run", "--help"], ["--config"], ["--version"],
                                  ["--debug", "run", "extra"], ["status"], []])
def test_fast_main_when_not_plain_run_leaves_it_to_click(args):
    assert fast_main(args) is None
