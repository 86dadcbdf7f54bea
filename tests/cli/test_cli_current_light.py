"""`keyward current`'s pathlib-free reading of where things are agrees with keyward.config.paths."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys

import pytest

from keyward.config import paths
from keyward.errors import ConfigError
from keyward.published import light_config_path, light_runtime_dir, light_state_dir

VARIABLES = ("KEYWARD_CONFIG", "XDG_CONFIG_HOME", "KEYWARD_STATE_DIR", "XDG_STATE_HOME", "KEYWARD_RUNTIME_DIR",
             "RUNTIME_DIRECTORY", "XDG_RUNTIME_DIR")


def _envs(tmp_path):
    (tmp_path / "xdg" / "keyward").mkdir(parents=True)
    (tmp_path / "xdg" / "keyward" / "keyward.toml").write_text("")
    (tmp_path / "named.toml").write_text("")
    values = {"KEYWARD_CONFIG": [None, str(tmp_path / "named.toml"), str(tmp_path / "missing.toml"), ""],
              "XDG_CONFIG_HOME": [None, str(tmp_path / "xdg"), str(tmp_path / "empty")],
              "KEYWARD_STATE_DIR": [None, "~/st"], "XDG_STATE_HOME": [None, "/xs"],
              "KEYWARD_RUNTIME_DIR": [None, "/kr"], "RUNTIME_DIRECTORY": [None, "/rd1:/rd2"],
              "XDG_RUNTIME_DIR": [None, "/xr"]}
    for combo in itertools.product(*(values[v] for v in VARIABLES)):
        env = {"HOME": str(tmp_path / "home")}
        env.update({k: v for k, v in zip(VARIABLES, combo) if v is not None})
        yield env


@pytest.mark.parametrize("uid", [0, 1000])
def test_light_paths_when_compared_with_config_paths_agree(tmp_path, monkeypatch, uid):
    monkeypatch.setattr(os, "geteuid", lambda: uid)
    for env in _envs(tmp_path):
        try:
            expected = paths.find_config_path(None, env=env)
        except ConfigError:
            expected = False
        found = light_config_path(None, env)
        assert (found if found in (None, False) else os.path.normpath(found)) == (
            expected if expected in (None, False) else str(expected)), env
        for system in (False, True):
            state = paths.default_state_dir(env, system=system)
            assert os.path.normpath(light_state_dir(env, system)) == str(state), env
            assert os.path.normpath(light_runtime_dir(env, None, system)) == str(
                paths.default_runtime_dir(env, system=system)), env


def test_current_when_a_key_is_published_imports_no_pathlib(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "default.key").write_text("AQ." + "x" * 40 + "\n")
    probe = ("import sys\nfrom keyward.cli import main\ntry:\n    main(['current'])\nexcept SystemExit:\n"
             "    pass\nsys.stderr.write(repr([m for m in ('pathlib', 'click', 'sqlalchemy', 'json') if m in sys.modules]))\n")
    env = {**os.environ, "KEYWARD_STATE_DIR": str(tmp_path / "state"), "KEYWARD_RUNTIME_DIR": str(run),
           "XDG_CONFIG_HOME": str(tmp_path / "xdg"), "HOME": str(tmp_path)}
    env.pop("KEYWARD_CONFIG", None)
    # -S: no site, so only keyward's own imports count (an editable install's finder imports pathlib)
    result = subprocess.run([sys.executable, "-S", "-c", f"import sys; sys.path[:0] = {sys.path!r}\n" + probe],
                            capture_output=True, text=True, env=env, timeout=60)
    assert result.stdout.strip().endswith("x" * 40), result.stderr
    assert result.stderr == "[]"
