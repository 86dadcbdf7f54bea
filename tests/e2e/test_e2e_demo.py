"""`keyward demo` as a user runs it: in a terminal, for its default duration, as a real subprocess.

The live screen is drawn only when stdout is a terminal, so the demo runs on a pseudo-terminal here:
a pipe would take the quiet path and leave the screen untested.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

from keyward.config import load_config
from keyward.context import Context
from keyward.storage import store as q

DEMO_TIMEOUT = 150.0  # the default duration is 45 s; start-up and shutdown take a few more


def _run_in_pty(argv: list[str], env: dict[str, str], timeout: float) -> tuple[int, str]:
    """Run `argv` with a pseudo-terminal as stdin, stdout and stderr; return (exit code, output)."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 160, 0, 0))
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True)
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            assert time.monotonic() < deadline, "the demo did not end: " + b"".join(chunks)[-2000:].decode()
            try:
                chunk = os.read(master, 1 << 16)
            except OSError as exc:  # EIO: every writer closed the terminal
                if exc.errno != errno.EIO:
                    raise
                break
            if not chunk:
                break
            chunks.append(chunk)
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return code, b"".join(chunks).decode("utf-8", errors="replace").replace("\r\n", "\n")


def test_demo_in_a_terminal_for_its_default_duration_draws_and_shows_the_whole_story(tmp_path, kw_env):
    state = tmp_path / "demo"

    code, out = _run_in_pty([sys.executable, "-m", "keyward", "demo", "--state-dir", str(state)],
                            {**os.environ, **kw_env, "TERM": "xterm"}, DEMO_TIMEOUT)

    assert code == 0, out[-3000:]
    assert "\x1b[H\x1b[2J" in out and "keyward status at" in out and "POOL default" in out
    assert "traffic:" in out
    for bad in ("Traceback", "internal error", "keyward: error"):
        assert bad not in out, out[-3000:]
    done = re.search(r"done: (\d+) requests served, (\d+) quota 429s, published key changed (\d+) time\(s\), "
                     r"(\d+) rotation\(s\) done, (\d+) key\(s\) retired", out)
    assert done, out[-3000:]
    served, quota_429s, switches, rotations, retired = map(int, done.groups())
    assert served > 0 and quota_429s > 0 and switches > 0 and rotations > 0 and retired > 0, done.group(0)
    assert "state kept in" in out and "keyward --config" in out

    with Context(load_config(state / "keyward.toml")) as ctx, ctx.store.read() as s:
        events = q.recent_events(s, 5000)
        keys = q.list_keys(s)
    kinds = [e.kind for e in events]
    assert "selection.switched" in kinds
    # a scheduled rotation (not the first key of a project): promoted with the old key kept for its
    # grace period, and a key keyward created deleted at Google once that grace was over
    assert any(e.kind == "rotation.promoted" and "kept until" in e.message for e in events)
    assert any(e.kind == "key.retired" and "deleted at Google" in e.message for e in events)
    # the hand-made standard key was migrated to an auth key
    assert any(k.kind == "standard" and k.state in ("previous", "retired") for k in keys), (
        [(k.key_id, k.kind, k.state) for k in keys], (state / "daemon.log").read_text()[-4000:])
    # and never published on the way: Gemini rejects it, so the traffic never ran on it
    standard_ids = {k.key_id for k in keys if k.kind == "standard"}
    assert not standard_ids & {e.key_id for e in events if e.kind == "selection.switched"}
    log = (state / "daemon.log").read_text()
    for secret in (k.secret for k in keys if k.secret):  # never a key string on screen or in the log
        assert secret not in out and secret not in log
    assert not _processes_mentioning(str(state)), "the demo left a process running"


def _processes_mentioning(text: str) -> list[int]:
    """Pids whose command line mentions `text` (read from /proc; no procps needed)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                pass
    return found
