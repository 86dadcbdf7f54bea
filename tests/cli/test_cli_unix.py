"""keyward as a Unix tool, run as people run it: real processes, real pipes, closed early.

A reader that leaves (`| head`, `| true`) ends keyward quietly with 141, as SIGPIPE ends `cat`;
no escape code goes into a pipe; $NO_COLOR turns color off; `status --check` fails on errors.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from keyward.cli.app import cli
from keyward.cli.pipes import EXIT_PIPE_CLOSED


def _keyward(*args: str) -> list[str]:
    return [sys.executable, "-m", "keyward", *args]


@pytest.fixture
def many_pools(kw_env):
    """Enough pools that `pool list` writes more than one pipe read."""
    runner = CliRunner()
    for n in range(30):
        assert runner.invoke(cli, ["pool", "add", f"pool-{n:02d}"]).exit_code == 0
    return kw_env


def _closed_early(args: list[str], env: dict[str, str], read: int = 0) -> subprocess.CompletedProcess:
    """Run keyward with stdout a pipe whose reader takes `read` bytes and then closes it."""
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **env})
    if read:
        proc.stdout.read(read)
    proc.stdout.close()
    try:
        stderr = proc.stderr.read()
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
    return subprocess.CompletedProcess(args, code, b"", stderr)


def test_pool_list_when_reader_closes_the_pipe_at_once_ends_quietly_with_141(many_pools):
    result = _closed_early(_keyward("pool", "list"), many_pools)

    assert (result.returncode, result.stderr) == (EXIT_PIPE_CLOSED, b"")


def test_pool_list_into_true_in_a_shell_prints_no_error(many_pools):
    result = subprocess.run(["bash", "-c", f"{sys.executable} -m keyward pool list | true; "
                                          "echo status=${PIPESTATUS[0]}"],
                            capture_output=True, text=True, env={**os.environ, **many_pools}, timeout=60)

    assert result.stderr == ""
    assert result.stdout.strip() in ("status=0", f"status={EXIT_PIPE_CLOSED}")


def test_status_watch_into_head_ends_quietly_after_plain_frames(many_pools):
    result = subprocess.run(["bash", "-c", f"{sys.executable} -m keyward status --watch 0.5 | head -n 3; "
                                          "echo status=${PIPESTATUS[0]}"],
                            capture_output=True, text=True, env={**os.environ, **many_pools}, timeout=60)

    lines = result.stdout.splitlines()
    assert lines[0].startswith("keyward status at") and "\x1b" not in result.stdout
    assert lines[-1] == f"status={EXIT_PIPE_CLOSED}" and result.stderr == ""


def test_status_watch_into_a_pipe_separates_plain_frames_with_a_blank_line(many_pools):
    proc = subprocess.Popen(_keyward("status", "--watch", "0.5"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, **many_pools}, text=True)
    try:
        seen, deadline = [], time.monotonic() + 30
        while sum(line.startswith("keyward status at") for line in seen) < 2 and time.monotonic() < deadline:
            seen.append(proc.stdout.readline())
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    text = "".join(seen)
    assert "\x1b" not in text and "\n\nkeyward status at" in text


@pytest.mark.parametrize("env_extra, args, colored", [
    ({}, ["--color"], True),
    ({"NO_COLOR": "1"}, [], False),
    ({"NO_COLOR": "1"}, ["--color"], True),   # an explicit flag wins over the environment
    ({"NO_COLOR": ""}, [], True),             # no-color.org: only a non-empty value counts
])
def test_status_color_when_on_a_terminal_honours_no_color(kw_env, monkeypatch, env_extra, args, colored):
    from keyward.cli.status_screen import use_color

    class Terminal:
        def isatty(self) -> bool:
            return True

    for name, value in env_extra.items():
        monkeypatch.setenv(name, value)
    flag = True if "--color" in args else None

    assert use_color(flag, Terminal()) is colored


def test_status_when_no_color_set_and_color_not_asked_writes_no_escape_codes(kw_env):
    result = subprocess.run(_keyward("status"), capture_output=True, text=True,
                            env={**os.environ, **kw_env, "NO_COLOR": "1"}, timeout=60)

    assert result.returncode == 0 and "\x1b" not in result.stdout


def test_status_check_when_an_error_is_shown_exits_1_and_without_check_0(kw_env):
    # no daemon has ever run here: the status shows that as an error
    plain = subprocess.run(_keyward("status"), capture_output=True, text=True, env={**os.environ, **kw_env}, timeout=60)
    checked = subprocess.run(_keyward("status", "--check", "--json"), capture_output=True, text=True,
                             env={**os.environ, **kw_env}, timeout=60)

    assert plain.returncode == 0 and "NOT RUNNING" in plain.stdout
    assert checked.returncode == 1
    assert any(w["level"] == "error" for w in json.loads(checked.stdout)["warnings"])


def test_pool_remove_when_empty_forgets_it_and_when_it_has_projects_exits_2(kw_env):
    runner = CliRunner()
    runner.invoke(cli, ["pool", "add", "spare"])
    runner.invoke(cli, ["pool", "add", "busy"])
    runner.invoke(cli, ["project", "add", "busy-project-1", "--pool", "busy"])

    removed = runner.invoke(cli, ["pool", "remove", "spare"])
    refused = runner.invoke(cli, ["pool", "remove", "busy"])
    missing = runner.invoke(cli, ["pool", "remove", "never-was"])

    assert removed.exit_code == 0 and "spare" not in runner.invoke(cli, ["pool", "list"]).output
    assert refused.exit_code == 2 and "busy-project-1" in refused.output
    assert missing.exit_code != 0 and "never-was" in missing.output


def test_pool_remove_when_declared_in_the_config_exits_2_naming_the_file(tmp_path, kw_env):
    path = tmp_path / "keyward.toml"
    path.write_text('[pools.declared]\nmodel = "gemini-2.5-flash"\n')

    result = CliRunner().invoke(cli, ["--config", str(path), "pool", "remove", "declared"])

    assert result.exit_code == 2 and str(path) in result.output


def test_current_help_when_asked_explains_pool():
    result = CliRunner().invoke(cli, ["current", "--help"])

    assert result.exit_code == 0
    assert "--pool NAME" in result.output and "The pool whose published key to print" in result.output
