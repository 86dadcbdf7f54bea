"""`keyward rotate` and `keyward keys sweep` through the CLI: exit codes and messages."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from keyward.cli.app import cli
from keyward.context import Context

from rotation_world import config_text


@pytest.fixture
def run(tmp_path, emu, kw_env, monkeypatch):
    path = tmp_path / "keyward.toml"
    path.write_text(config_text(tmp_path), encoding="utf-8")
    monkeypatch.setenv("KEYWARD_CONFIG", str(path))
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(cli, list(args), catch_exceptions=False)

    invoke.config = path
    return invoke


def live(emu, project):
    return [k["name"].rsplit("/", 1)[-1] for k in emu.keys(project)]


def test_rotate_when_dry_run_prints_plan_and_creates_nothing(run, emu):
    result = run("rotate", "--all", "--dry-run")

    assert result.exit_code == 0, result.output
    assert "alpha-proj: would-rotate: would create the project's first key" in result.output
    assert "beta-proj: would-rotate" in result.output
    assert live(emu, "alpha-proj") == [] and live(emu, "beta-proj") == []


def test_rotate_when_all_rotates_every_managed_project_and_exits_0(run, emu):
    result = run("rotate", "--all")

    assert result.exit_code == 0, result.output
    assert "alpha-proj: rotated: new key kw-" in result.output
    assert len(live(emu, "alpha-proj")) == 1 and len(live(emu, "beta-proj")) == 1
    assert "gamma-proj" not in result.output
    again = run("rotate", "--all")
    assert again.exit_code == 0 and "not-due" in again.output


def test_rotate_when_one_project_denied_exits_1_with_summary_and_others_rotate(run, emu):
    emu.deny_permission("alpha-proj", "apikeys.keys.create")

    result = run("rotate", "--all")

    assert result.exit_code == 1
    assert "1 project(s) failed" in result.output
    assert "permission apikeys.keys.create is missing" in result.output
    assert "beta-proj: rotated" in result.output and len(live(emu, "beta-proj")) == 1


def test_rotate_when_neither_project_nor_all_exits_2(run):
    result = run("rotate")

    assert result.exit_code == 2 and "--project ID, or use --all" in result.output


def test_rotate_when_project_unmanaged_exits_2_naming_key_add(run):
    result = run("rotate", "--project", "gamma-proj", "--now")

    assert result.exit_code == 2
    assert "keyward key add --project gamma-proj --replaces KEY" in result.output


def test_rotate_when_project_unknown_exits_2_naming_it(run):
    result = run("rotate", "--project", "nowhere-proj")

    assert result.exit_code == 2 and "nowhere-proj" in result.output


def test_keys_sweep_when_stray_key_lists_then_prunes(run, emu):
    assert run("rotate", "--project", "alpha-proj").exit_code == 0
    ctx = Context.load(str(run.config))
    try:
        from keyward.rotation.deps import default_client

        from keyward.rotation.records import installation_id

        client = default_client(ctx, lambda s: None)
        client.create_key(
            "alpha-proj", "kw-stray-2", display_name="keyward kw-stray-2",
            annotations={"keyward.io/managed": "true", "keyward.io/key-id": "kw-stray-2",
                         "keyward.io/installation": installation_id(ctx)})
        client.create_key(
            "alpha-proj", "kw-laptop-1", display_name="keyward kw-laptop-1",
            annotations={"keyward.io/managed": "true", "keyward.io/key-id": "kw-laptop-1",
                         "keyward.io/installation": "kw-0123456789abcdef"})
    finally:
        ctx.close()

    listed = run("keys", "sweep")
    assert listed.exit_code == 0, listed.output
    assert "kw-stray-2" in listed.output and "live" in listed.output and "--prune" in listed.output
    assert "kw-laptop-1" in listed.output and "kw-0123456789abcdef" in listed.output
    pruned = run("keys", "sweep", "--prune")
    assert pruned.exit_code == 0 and "deleted" in pruned.output
    assert "kw-stray-2" not in live(emu, "alpha-proj")
    assert "kw-laptop-1" in live(emu, "alpha-proj"), "another installation's key is never pruned"
    again = run("keys", "sweep").output
    assert "no stray keys" in again and "kw-laptop-1" in again


def test_rotate_when_run_as_subprocess_returns_0_with_active_verified_key(tmp_path, emu, kw_env):
    path = tmp_path / "keyward.toml"
    path.write_text(config_text(tmp_path), encoding="utf-8")
    env = {**os.environ, **kw_env, "KEYWARD_CONFIG": str(path),
           "KEYWARD_GOOGLE_EMULATOR_HOST": emu.address}

    done = subprocess.run([sys.executable, "-m", "keyward", "rotate", "--project", "beta-proj", "--now"],
                          env=env, capture_output=True, text=True, timeout=60)

    assert done.returncode == 0, done.stderr
    assert "beta-proj: rotated" in done.stdout
    ctx = Context.load(str(path))
    try:
        with ctx.store.read() as s:
            from keyward.storage import store as q

            active = [k for k in q.list_keys(s, "beta-proj") if k.state == "active"]
        assert len(active) == 1 and emu.key_string_valid(active[0].secret)
        assert active[0].secret not in done.stdout + done.stderr
    finally:
        ctx.close()


def test_rotate_when_another_rotation_runs_waits_then_exits_1_naming_the_holder(run, emu):
    import socket

    from keyward import leadership

    ctx = Context.load(str(run.config))
    try:
        with leadership.rotating(ctx, wait=0, kind="daemon", instance_id="d1d1d1d1d1d1"):
            with ctx.store.write() as s:  # the daemon describes itself in its instance row
                leadership.write_instance(s, leadership.describe(
                    "d1d1d1d1d1d1", "daemon", ctx.now(), role="leader"), ctx.now())
            result = run("rotate", "--project", "alpha-proj", "--now", "--wait", "0.5")
        assert result.exit_code == 1, result.output
        assert "keyward daemon d1d1d1d1d1d1" in result.output
        assert socket.gethostname() in result.output and f"pid {os.getpid()}" in result.output
        assert "waited 0.5 s" in result.output and live(emu, "alpha-proj") == []
        assert run("rotate", "--project", "alpha-proj", "--now").exit_code == 0  # free again
    finally:
        ctx.close()
