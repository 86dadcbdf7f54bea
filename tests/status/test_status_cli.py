from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from publishing_helpers import config_text

from keyward.cli.app import cli
from keyward.cli.status_screen import CLEAR, watch
from support.fakes import fake_auth_key

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def setup(tmp_path, kw_env):
    """A config with pool main (alpha-1, beta-2) and one key; returns (config path, the secret)."""
    path = tmp_path / "keyward.toml"
    path.write_text(config_text(tmp_path), encoding="utf-8")
    secret = fake_auth_key()
    result = CliRunner().invoke(cli, ["--config", str(path), "key", "add", "--project", "alpha-1"],
                                input=secret + "\n", catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return path, secret


def _run(path, *args):
    return CliRunner().invoke(cli, ["--config", str(path), "status", *args], catch_exceptions=False)


def test_status_cli_when_run_prints_the_screen_without_secrets(setup):
    path, secret = setup
    result = _run(path)
    assert result.exit_code == 0, result.output
    assert "POOL main" in result.output and "RPM [..........] 0/10" in result.output
    assert f"AQ.…{secret[-4:]}" in result.output and secret not in result.output
    assert "\x1b[" not in result.output  # no color when not a terminal
    assert result.output.rstrip().splitlines()[-1].startswith("  ")  # warnings are last


def test_status_cli_when_json_prints_the_schema(setup):
    path, secret = setup
    result = _run(path, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["schema_version"] == 1 and data["pools"][0]["name"] == "main"
    assert [p["project_id"] for p in data["projects"]] == ["alpha-1", "beta-2"]
    assert secret not in result.output


def test_status_cli_when_watch_into_a_pipe_prints_plain_frames_and_ends(setup):
    path, _ = setup
    result = _run(path, "--watch", "0.5", "--iterations", "2")
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output and result.output.count("POOL main") == 2


def test_status_cli_when_config_broken_exits_2(tmp_path, kw_env):
    path = tmp_path / "keyward.toml"
    path.write_text("[pools.main]\nmodle = 'x'\n", encoding="utf-8")
    result = _run(path)
    assert result.exit_code == 2 and "modle" in result.output


def test_watch_when_interrupted_stops_quietly():
    drawn, slept = [], []

    def sleep(seconds):
        slept.append(seconds)
        if len(slept) == 2:
            raise KeyboardInterrupt

    watch(lambda: f"frame {len(drawn)}", 3.0, echo=drawn.append, sleep=sleep)
    assert drawn == [CLEAR + "frame 0", CLEAR + "frame 1"] and slept == [3.0, 3.0]


def test_watch_when_iterations_given_draws_that_many_and_sleeps_between():
    drawn, slept = [], []
    watch(lambda: "x", 1.5, iterations=3, echo=drawn.append, sleep=slept.append)
    assert len(drawn) == 3 and slept == [1.5, 1.5]


def test_status_help_hides_the_iteration_limit():
    result = CliRunner().invoke(cli, ["status", "--help"])
    assert result.exit_code == 0 and "--watch" in result.output and "--iterations" not in result.output


def test_status_json_when_run_as_a_process_is_valid_json(setup):
    path, secret = setup
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "keyward", "--config", str(path), "status", "--json"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["projects"][0]["keys"][0]["masked"] == f"AQ.…{secret[-4:]}"
    assert secret not in proc.stdout + proc.stderr


def test_status_cli_when_json_is_compact_unless_pretty(setup, monkeypatch):
    from datetime import datetime, timezone

    from keyward.context import Context

    path, _ = setup
    instant = datetime.now(timezone.utc)  # both builds at one instant: ages and generated_at agree
    monkeypatch.setattr(Context, "now", lambda self: instant)
    compact, indented = _run(path, "--json").output, _run(path, "--json", "--pretty").output
    assert compact.count("\n") == 1 and indented.startswith('{\n  "daemon": {')
    assert json.loads(compact) == json.loads(indented)


def _process(tmp_path, *args, env_extra=None):
    env = {**os.environ, "KEYWARD_STATE_DIR": str(tmp_path / "state"), "KEYWARD_RUNTIME_DIR": str(tmp_path / "run"),
           "XDG_CONFIG_HOME": str(tmp_path / "xdg"), "HOME": str(tmp_path), **(env_extra or {})}
    env.pop("PYTHONPATH", None)
    return subprocess.run([sys.executable, "-m", "keyward", *args], env=env, capture_output=True, text=True,
                          timeout=60, cwd=str(REPO))


@pytest.mark.parametrize("config, exit_code", [
    ('[pools.main]\nmodle = "x"\n', 2),  # a config error
    ('database = "postgresql://nobody@127.0.0.1:1/none"\n', 1),  # a database nobody answers for
])
def test_status_when_no_daemon_fails_reports_as_every_command_does(tmp_path, config, exit_code):
    # `status --json` builds the status without click; `--top 5` takes the click path: same words
    path = tmp_path / "keyward.toml"
    path.write_text(config, encoding="utf-8")
    fast = _process(tmp_path, "--config", str(path), "status", "--json")
    slow = _process(tmp_path, "--config", str(path), "status", "--json", "--top", "5")
    assert (fast.returncode, fast.stderr, fast.stdout) == (slow.returncode, slow.stderr, slow.stdout)
    assert fast.returncode == exit_code and fast.stderr.startswith("keyward: error: ")


def test_status_when_keyward_config_names_a_missing_file_says_so_as_click_does(tmp_path):
    missing = str(tmp_path / "nowhere.toml")
    fast = _process(tmp_path, "status", "--check", env_extra={"KEYWARD_CONFIG": missing})
    slow = _process(tmp_path, "status", "--check", "--top", "5", env_extra={"KEYWARD_CONFIG": missing})
    assert (fast.returncode, fast.stderr) == (slow.returncode, slow.stderr)
    assert fast.returncode == 2 and missing in fast.stderr


def test_status_json_when_no_daemon_runs_equals_the_click_path(setup, tmp_path):
    path, secret = setup
    fast = _process(tmp_path, "--config", str(path), "status", "--json")
    slow = _process(tmp_path, "--config", str(path), "status", "--json", "--top", "5")
    assert fast.returncode == slow.returncode == 0, fast.stderr + slow.stderr
    first, second = json.loads(fast.stdout), json.loads(slow.stdout)
    first.pop("generated_at"), second.pop("generated_at")
    assert first == second and secret not in fast.stdout
