"""`--config FILE` and `--debug` work after the subcommand as well as before it, as unit files and
people write them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from keyward.cli.app import cli


def _config(tmp_path: Path, pool: str) -> Path:
    path = tmp_path / f"{pool}.toml"
    path.write_text(f'state_dir = "{tmp_path / pool}"\nruntime_dir = "{tmp_path / pool / "run"}"\n\n'
                    f'[pools.{pool}]\nmodel = "gemini-2.5-flash"\n')
    return path


@pytest.mark.parametrize("where", ["before", "after"])
def test_pool_list_when_config_given_before_or_after_the_subcommand_reads_that_file(tmp_path, kw_env, where):
    path = _config(tmp_path, "fromfile")
    args = (["--config", str(path), "pool", "list"] if where == "before"
            else ["pool", "list", "--config", str(path)])

    result = CliRunner().invoke(cli, args, catch_exceptions=False)

    assert result.exit_code == 0, result.output
    assert "fromfile" in result.output


def test_config_validate_when_config_given_after_with_equals_sign_reads_that_file(tmp_path, kw_env):
    path = _config(tmp_path, "eqpool")

    result = CliRunner().invoke(cli, ["config", "validate", f"--config={path}"], catch_exceptions=False)

    assert result.exit_code == 0, result.output
    assert str(path) in result.output and "1 pool(s)" in result.output


def test_run_when_config_after_the_subcommand_names_a_missing_file_exits_2_naming_it(tmp_path, kw_env):
    missing = tmp_path / "nope.toml"

    result = subprocess.run([sys.executable, "-m", "keyward", "run", "--once", "--config", str(missing)],
                            capture_output=True, text=True, env={**os.environ, **kw_env}, timeout=60)

    assert result.returncode == 2
    assert str(missing) in result.stderr and "no such option" not in result.stderr


def test_run_help_when_asked_lists_config_and_debug(kw_env):
    result = CliRunner().invoke(cli, ["run", "--help"])

    assert result.exit_code == 0
    assert "--config FILE" in result.output and "--debug" in result.output


def test_debug_when_given_after_the_subcommand_shows_the_traceback(tmp_path, kw_env):
    bad = tmp_path / "bad.toml"
    bad.write_text("[daemon]\nheartbeat = 'soon'\n")

    after = subprocess.run([sys.executable, "-m", "keyward", "config", "validate", "--config", str(bad), "--debug"],
                           capture_output=True, text=True, env={**os.environ, **kw_env}, timeout=60)

    assert after.returncode == 2
    assert "Traceback" in after.stderr and "heartbeat" in after.stderr


def test_status_when_config_after_and_daemon_answers_keeps_the_fast_path(tmp_path, kw_env):
    from keyward import inventory
    from keyward.config import load_config
    from keyward.context import Context
    from keyward.status_socket import StatusServer, socket_path

    path = _config(tmp_path, "fastpool")
    ctx = Context(load_config(path))
    inventory.add_project(ctx, "alpha-project-1", pool="fastpool")
    server = StatusServer(lambda: ctx, socket_path(ctx.config.runtime_dir)).start()
    probe = ("import sys\nfrom keyward.cli import main\ntry:\n"
             f"    main(['status', '--json', '--check', '--config', {str(path)!r}])\n"
             "except SystemExit as exc:\n    code = exc.code\n"
             "sys.stderr.write(repr((code, [m for m in ('click', 'sqlalchemy') if m in sys.modules])))\n")
    try:
        result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                                env={**os.environ, **kw_env}, timeout=60)
    finally:
        server.stop()
        ctx.close()
    assert result.stderr == "(1, [])"  # answered by the daemon; --check: no daemon heartbeat is an error
    assert [p["project_id"] for p in json.loads(result.stdout)["projects"]] == ["alpha-project-1"]
