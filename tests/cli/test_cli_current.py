from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from support.fakes import fake_auth_key


def _current(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "keyward", "current", *args], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=60)


def _publish(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_current_when_default_file_published_prints_only_the_key(kw_env):
    secret = fake_auth_key()
    _publish(Path(kw_env["KEYWARD_RUNTIME_DIR"]) / "default.key", secret + "\n")
    result = _current(kw_env)
    assert result.returncode == 0 and result.stdout == secret + "\n" and result.stderr == ""


def test_current_when_pool_has_env_file_sink_reads_it(kw_env, tmp_path):
    secret = fake_auth_key()
    target = tmp_path / "out" / "main.env"
    _publish(target, f"GEMINI_API_KEY={secret}\nGOOGLE_API_KEY={secret}\n")
    config = tmp_path / "keyward.toml"
    config.write_text(f'[pools.main]\n[[pools.main.sinks]]\ntype = "file"\npath = "{target}"\nformat = "env"\n')
    result = _current({**kw_env, "KEYWARD_CONFIG": str(config)}, "--pool", "main")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == secret


def test_current_fast_path_imports_neither_click_nor_sqlalchemy_nor_google(kw_env):
    _publish(Path(kw_env["KEYWARD_RUNTIME_DIR"]) / "default.key", fake_auth_key() + "\n")
    probe = ("import sys\nfrom keyward.cli import main\ntry:\n    main(['current'])\nexcept SystemExit:\n    pass\n"
             "heavy = [m for m in ('click', 'sqlalchemy', 'googleapiclient', 'keyring', 'apscheduler') "
             "if m in sys.modules]\nsys.stderr.write(repr(heavy))\n")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            env={**os.environ, **kw_env}, timeout=60)
    assert result.stderr == "[]"


def test_current_check_when_all_projects_exhausted_prints_key_and_exits_1(kw_env):
    secret = fake_auth_key()
    run_dir = Path(kw_env["KEYWARD_RUNTIME_DIR"])
    _publish(run_dir / "default.key", secret + "\n")
    _publish(run_dir / "default.state.json", json.dumps({"pool": "default", "all_exhausted": True}))
    result = _current(kw_env, "--check")
    assert result.returncode == 1 and result.stdout.strip() == secret and "exhausted" in result.stderr
    _publish(run_dir / "default.state.json", json.dumps({"pool": "default", "all_exhausted": False}))
    assert _current(kw_env, "--check").returncode == 0


@pytest.mark.parametrize("args, code, words", [
    (["--pool"], 2, "needs a value"),
    (["--bogus"], 2, "No such option"),
])
def test_current_when_arguments_bad_exits_2(kw_env, args, code, words):
    result = _current(kw_env, *args)
    assert result.returncode == code and words in result.stderr


def test_current_when_config_file_named_is_missing_exits_2_naming_it(kw_env, tmp_path):
    missing = tmp_path / "nope.toml"
    result = _current({**kw_env, "KEYWARD_CONFIG": str(missing)})
    assert result.returncode == 2 and str(missing) in result.stderr
