"""The daemon and `keyward rotate --now` racing on one database: one key per rotation, no orphan,
no double promotion. The daemon's keys fall due every few seconds, so both runners want to rotate
the same projects again and again."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter

from support.daemon_harness import DaemonProcess, wait_for, write_config

PROJECTS = [("race-alpha-1", "320000000001"), ("race-bravo-2", "320000000002")]


def test_daemon_and_rotate_now_racing_make_one_key_per_rotation(tmp_path, kw_env):
    from keyward.context import Context
    from keyward.emulator import Emulator
    from keyward.storage.models import Event, Key, Rotation

    emu = Emulator().start()
    emu.operation_polls, emu.operation_seconds = 1, 0.3
    for pid, number in PROJECTS:
        emu.add_project(pid, number)
    env = {**kw_env, "KEYWARD_GOOGLE_EMULATOR_HOST": emu.address}
    config = write_config(tmp_path, PROJECTS)
    text = config.read_text().replace('min_age = "1h"', 'min_age = "10s"').replace(
        'max_age = "2h"', 'max_age = "12s"').replace('grace = "1h"', 'grace = "2s"')
    config.write_text(text)
    daemon = DaemonProcess(config, env)
    commands = []
    try:
        wait_for(lambda: "daemon ready" in daemon.log, 60, "the daemon")
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            for pid, _ in PROJECTS:
                done = subprocess.run(
                    [sys.executable, "-m", "keyward", "--config", str(config), "rotate", "--project",
                     pid, "--now", "--wait", "30"], env={**os.environ, **env},
                    capture_output=True, text=True, timeout=60)
                commands.append(done.returncode)
                assert done.returncode == 0, done.stdout + done.stderr
            if len(commands) >= 8:
                break
    finally:
        daemon.stop()

    try:
        with Context.load(str(config)) as ctx, ctx.store.read() as s:
            rotations = s.query(Rotation).all()
            keys = {k.key_id: k.state for k in s.query(Key).all()}
            promoted = Counter(e.key_id for e in s.query(Event).filter(Event.kind == "rotation.promoted"))
        at_google = {k["name"].rsplit("/", 1)[-1]: k for pid, _ in PROJECTS
                     for k in emu.keys(pid, show_deleted=True)}
        assert len(commands) >= 8
        assert any(r.reason != "forced" for r in rotations), "the daemon rotated too"
        assert max(promoted.values()) == 1, promoted.most_common(2)
        assert len(promoted) >= len(commands), "every command finished a rotation of its own"
        by_id = {r.new_key_id: r for r in rotations}
        for key_id, key in at_google.items():
            row = by_id.get(key_id)
            assert row is not None, f"key {key_id} at Google has no rotation"
            if not key.get("deleteTime"):
                assert key_id in keys or row.finished_at is None, f"orphan {key_id}"
        assert len(at_google) == len([r for r in rotations if r.new_key_id in at_google])
        assert Counter(v for v in keys.values())["active"] == len(PROJECTS)
    finally:
        emu.stop()
