"""Crash safety of rotation: a real `keyward rotate` process SIGKILLed at every step boundary.

The service honours the test hook KEYWARD_TEST_CRASH_AT=<step> (keyward.rotation.deps.crash_point):
the process kills itself right after journaling that step. Between the kill and the restart, and
after the restart, the project must have exactly one active key, the active and the published keys
must work at the emulator, and after the restart the emulator must hold no live key keyward does
not know.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from keyward.context import Context
from keyward.published import read_published_file
from keyward.storage import rotation_queries as rq
from keyward.storage import store as q
from keyward.storage.models import LIVE_STATES

PROJECT, NUMBER = "crash-proj", "444444444444"
CRASH_ENV = "KEYWARD_TEST_CRASH_AT"  # the test hook keyward.rotation.deps.crash_point honours
STEPS = ["planned", "create-sent", "creating", "created", "verified", "promoted", "done"]


@pytest.fixture
def scene(tmp_path, kw_env):
    from keyward.emulator import Emulator

    emu = Emulator().start()
    emu.operation_polls = 0
    emu.add_project(PROJECT, NUMBER)
    published = tmp_path / "run" / "main.key"
    config = tmp_path / "keyward.toml"
    config.write_text(textwrap.dedent(f"""
        state_dir = "{tmp_path / 'state'}"
        runtime_dir = "{tmp_path / 'run'}"

        [rotation]
        retry_budget = "10s"
        operation_timeout = "10s"

        [pools.main]
        sinks = [{{ type = "file", path = "{published}" }}]

        [projects.{PROJECT}]
        number = "{NUMBER}"
        pool = "main"
        managed = true
        service_account = "keyward@{PROJECT}.iam.gserviceaccount.com"
    """), encoding="utf-8")
    env = {**os.environ, **kw_env, "KEYWARD_CONFIG": str(config),
           "KEYWARD_GOOGLE_EMULATOR_HOST": emu.address}
    env.pop(CRASH_ENV, None)
    yield emu, config, published, env
    emu.stop()



def rotate(env, crash_at: str | None = None) -> subprocess.CompletedProcess:
    run_env = dict(env)
    if crash_at:
        run_env[CRASH_ENV] = crash_at
    return subprocess.run([sys.executable, "-m", "keyward", "rotate", "--project", PROJECT, "--now"],
                          env=run_env, capture_output=True, text=True, timeout=30)


def check(emu, config: Path, published: Path, *, settled: bool) -> tuple[str, str]:
    """Assert the invariants; return the active key's id and key string."""
    ctx = Context.load(str(config))
    try:
        with ctx.store.read() as s:
            keys = q.list_keys(s, PROJECT)
            active = [k for k in keys if k.state == "active"]
            assert len(active) == 1, [(k.key_id, k.state) for k in keys]
            assert emu.key_string_valid(active[0].secret), "the active key must work"
            on_file = read_published_file(published)
            assert on_file is not None and emu.key_string_valid(on_file), "the published key must work"
            if settled:
                project = q.get_project(s, PROJECT)
                assert rq.open_rotation(s, project.id) is None
                assert on_file == active[0].secret
                known = {k.google_name for k in keys if k.state in LIVE_STATES}
                at_google = {k["name"] for k in emu.keys(PROJECT)}
                assert at_google <= known, f"keys at Google keyward does not know: {at_google - known}"
            return active[0].key_id, active[0].secret
    finally:
        ctx.close()


def test_rotation_when_killed_at_every_step_converges_with_a_valid_key(scene):
    emu, config, published, env = scene
    seeded = rotate(env)
    assert seeded.returncode == 0, seeded.stderr
    active, old_secret = check(emu, config, published, settled=True)

    for step in STEPS:
        crashed = rotate(env, crash_at=step)
        assert crashed.returncode == -signal.SIGKILL, (step, crashed.returncode, crashed.stderr)
        check(emu, config, published, settled=False)
        assert emu.key_string_valid(old_secret), f"the old key must still work after a crash at {step}"

        restarted = rotate(env)
        assert restarted.returncode == 0, (step, restarted.stderr)
        now_active, secret = check(emu, config, published, settled=True)
        assert now_active != active, f"after a crash at {step} the restart must finish a rotation"
        assert emu.key_string_valid(old_secret), "the replaced key stays valid for the grace period"
        active, old_secret = now_active, secret


def test_rotation_when_killed_after_failed_verification_keeps_old_key_and_no_orphan(scene):
    emu, config, published, env = scene
    assert rotate(env).returncode == 0
    before, _ = check(emu, config, published, settled=True)
    emu.inject_fault("generativelanguage", status=400, count=1)

    crashed = rotate(env, crash_at="failed")

    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    assert check(emu, config, published, settled=True)[0] == before
    restarted = rotate(env)
    assert restarted.returncode == 0, restarted.stderr
    assert check(emu, config, published, settled=True)[0] != before


@pytest.mark.parametrize("step", ["create-sent", "creating"])
def test_rotation_when_killed_while_create_operation_runs_and_resumed_at_once_adopts_the_key(scene, step):
    emu, config, published, env = scene
    assert rotate(env).returncode == 0
    before, old_secret = check(emu, config, published, settled=True)
    # Google takes its time: the new key reads as 404 until its operation is done, and a retried
    # create of the same key id is accepted, then fails in the operation with ALREADY_EXISTS.
    emu.operation_polls, emu.operation_seconds = 10_000, 1.5

    crashed = rotate(env, crash_at=step)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    restarted = rotate(env)  # at once, while the first create is still running

    assert restarted.returncode == 0, restarted.stderr
    after, _ = check(emu, config, published, settled=True)
    assert after != before and emu.key_string_valid(old_secret)
    made = [k for k in emu.keys(PROJECT, show_deleted=True) if k["name"].endswith("/" + after)]
    assert len(made) == 1
    assert len(emu.keys(PROJECT, show_deleted=True)) == 2, "one key per rotation, no orphan"
