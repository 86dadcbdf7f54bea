from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from keyward.cli.app import cli
from support.fakes import fake_auth_key, fake_standard_key


@pytest.fixture
def run(kw_env):
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None):
        return runner.invoke(cli, list(args), input=input, catch_exceptions=False)

    return invoke


def test_pool_and_project_when_added_are_listed(run):
    assert run("pool", "add", "main", "--model", "gemini-2.5-pro").exit_code == 0
    result = run("project", "add", "alpha-project-1", "--pool", "main", "--number", "1234")
    assert result.exit_code == 0, result.output
    listing = run("project", "list")
    assert "alpha-project-1" in listing.output and "main" in listing.output and "1234" in listing.output
    assert "gemini-2.5-pro" in run("pool", "list").output


def test_project_add_when_pool_unknown_exits_2_naming_it(run):
    result = run("project", "add", "alpha-project-1", "--pool", "nowhere")
    assert result.exit_code == 2
    assert "nowhere" in result.output and "keyward pool add" in result.output


@pytest.mark.parametrize(
    "args, words",
    [
        (["Bad_Project"], ["project id", "Bad_Project"]),
        (["alpha-project-1", "--number", "12ab"], ["project number", "12ab"]),
        (["alpha-project-1", "--managed"], ["--service-account"]),
        (["alpha-project-1", "--allowed-ip", "300.1.2.3"], ["allowed IP", "300.1.2.3"]),
        (["alpha-project-1", "--service-account", "nobody@example.com"], ["service account"]),
    ],
)
def test_project_add_when_input_bad_exits_2_naming_the_value(run, args, words):
    result = run("project", "add", *args)
    assert result.exit_code == 2, result.output
    for word in words:
        assert word in result.output


def test_key_add_when_auth_key_on_stdin_is_active_and_masked(run):
    run("project", "add", "alpha-project-1")
    secret = fake_auth_key()
    result = run("key", "add", "--project", "alpha-project-1", input=secret + "\n")
    assert result.exit_code == 0, result.output
    assert "active" in result.output and f"AQ.…{secret[-4:]}" in result.output
    listing = run("key", "list")
    assert f"AQ.…{secret[-4:]}" in listing.output and "auth" in listing.output
    assert secret not in result.output + listing.output


def test_key_add_when_standard_key_warns_that_gemini_rejects_it(run):
    run("project", "add", "alpha-project-1")
    result = run("key", "add", "--project", "alpha-project-1", input=fake_standard_key() + "\n")
    assert result.exit_code == 0
    assert "standard" in result.output and "September 2026" in result.output


@pytest.mark.parametrize(
    "text, reason",
    [
        ("", "no key on standard input"),
        ("hello-world", "not a Gemini API key"),
        ("AIzaTooShort", "not a valid standard key"),
        ("AQ.x", "not a valid auth key"),
        ("AQ.abc def ghi jkl mno", "whitespace"),
    ],
)
def test_key_add_when_input_invalid_exits_2_with_reason(run, text, reason):
    run("project", "add", "alpha-project-1")
    result = run("key", "add", "--project", "alpha-project-1", input=text + "\n")
    assert result.exit_code == 2
    assert reason in result.output


def test_key_add_when_same_key_twice_refuses(run):
    run("project", "add", "alpha-project-1")
    secret = fake_auth_key()
    run("key", "add", "--project", "alpha-project-1", input=secret + "\n")
    result = run("key", "add", "--project", "alpha-project-1", input=secret + "\n")
    assert result.exit_code == 2 and "already known" in result.output and secret not in result.output


def test_key_add_with_replaces_moves_old_key_to_grace(run):
    run("project", "add", "alpha-project-1")
    first = run("key", "add", "--project", "alpha-project-1", input=fake_auth_key() + "\n")
    old_id = first.output.split()[1]
    result = run("key", "add", "--project", "alpha-project-1", "--replaces", old_id, input=fake_auth_key() + "\n")
    assert result.exit_code == 0, result.output
    listing = run("key", "list").output
    old_line = next(line for line in listing.splitlines() if line.startswith(old_id))
    assert "previous" in old_line


def test_project_declared_in_config_when_removed_by_cli_refuses_naming_file(run, tmp_path):
    config = tmp_path / "keyward.toml"
    config.write_text('[projects.alpha-project-1]\nnumber = "1234"\n')
    result = run("--config", str(config), "project", "remove", "alpha-project-1")
    assert result.exit_code == 2
    assert str(config) in result.output


def test_config_validate_when_file_has_errors_lists_each_with_line(run, tmp_path):
    config = tmp_path / "keyward.toml"
    config.write_text('[usage]\npoll_intervall = "60s"\n\n[rotation]\ngrace = "soon"\n')
    result = run("--config", str(config), "config", "validate")
    assert result.exit_code == 2
    assert f"{config}:2" in result.output and "poll_interval" in result.output
    assert f"{config}:5" in result.output and "rotation.grace" in result.output


def test_init_then_validate_accepts_the_example(run, tmp_path):
    target = tmp_path / "conf" / "keyward.toml"
    assert run("init", "--path", str(target)).exit_code == 0
    result = run("--config", str(target), "config", "validate")
    assert result.exit_code == 0, result.output
    again = run("init", "--path", str(target))
    assert again.exit_code == 2 and "--force" in again.output


def test_db_upgrade_when_run_reports_revision(run):
    result = run("db", "upgrade")
    assert result.exit_code == 0 and "upgraded" in result.output
    assert "already" in run("db", "upgrade").output
    assert "up to date" in run("db", "status").output


def test_current_when_nothing_published_exits_1_and_unknown_pool_exits_2(run):
    run("project", "add", "alpha-project-1")
    assert run("current").exit_code == 1
    assert run("current", "--pool", "nope").exit_code == 2


def test_key_string_when_added_never_appears_in_any_command_output(run, tmp_path):
    run("project", "add", "alpha-project-1")
    secret = fake_auth_key()
    outputs = [run("key", "add", "--project", "alpha-project-1", input=secret + "\n").output]
    for args in (["key", "list", "--all"], ["project", "list"], ["pool", "list"], ["db", "status"],
                 ["--debug", "project", "remove", "nope"], ["config", "validate"]):
        outputs.append(run(*args).output)
    joined = "\n".join(outputs)
    assert secret not in joined and secret[3:] not in joined


def _installed_keyward() -> str | None:
    beside = Path(sys.executable).parent / "keyward"
    if beside.exists():
        return str(beside)
    return shutil.which("keyward")


def test_installed_entry_point_when_run_as_subprocess_works_with_exit_codes(kw_env):
    exe = _installed_keyward()
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("the keyward entry point is not installed")
        pytest.skip("keyward is not installed in this environment")
    env = {**os.environ, **kw_env}
    version = subprocess.run([exe, "--version"], capture_output=True, text=True, env=env, timeout=60)
    assert version.returncode == 0 and "keyward" in version.stdout
    bad = subprocess.run([exe, "project", "add", "Bad_Id"], capture_output=True, text=True, env=env, timeout=60)
    assert bad.returncode == 2 and "project id" in bad.stderr and "Traceback" not in bad.stderr
    secret = fake_auth_key()
    subprocess.run([exe, "project", "add", "alpha-project-1"], check=True, env=env, timeout=60, capture_output=True)
    added = subprocess.run([exe, "key", "add", "--project", "alpha-project-1"], input=secret + "\n",
                           capture_output=True, text=True, env=env, timeout=60)
    assert added.returncode == 0, added.stderr
    assert secret not in added.stdout + added.stderr


def test_init_when_directory_cannot_be_created_exits_1_naming_it(run, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = run("init", "--path", str(blocker / "keyward.toml"))
    assert result.exit_code == 1 and str(blocker) in result.output and "Traceback" not in result.output


def test_pool_list_when_pools_hold_projects_counts_each_pools_own(run):
    run("pool", "add", "main", "--model", "gemini-2.5-pro")
    run("pool", "add", "spare", "--model", "gemini-2.5-flash")
    run("pool", "add", "empty", "--model", "gemini-2.5-flash")
    for n, pool in ((1, "main"), (2, "main"), (3, "spare")):
        assert run("project", "add", f"alpha-project-{n}", "--pool", pool).exit_code == 0
    rows = {line.split()[0]: line.split() for line in run("pool", "list").output.splitlines()[1:]}
    assert (rows["main"][2], rows["spare"][2], rows["empty"][2]) == ("2", "1", "0")
