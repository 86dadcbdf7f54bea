"""A program using keyward.genai next to the real daemon: it runs into an exhausting 429, the
daemon (told through its ingest socket, since the program may not write the database) publishes
the other project's key, the call succeeds on it, and each answer is counted exactly once."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from support.daemon_harness import MODEL, DaemonProcess, wait_for, write_config

PROJECTS = [("e2e-alpha-1", "200000000001"), ("e2e-bravo-2", "200000000002")]

PROGRAM = textwrap.dedent(f"""
    import json
    from keyward.genai import Client
    # switch_wait: the default 2 s is ample for a daemon that answers in milliseconds, but not
    # for one sharing two loaded cores with a test suite
    with Client("default", switch_wait=15) as client:
        out = []
        for _ in range(2):
            answer = client.models.generate_content(model="{MODEL}", contents="hello")
            out.append({{"text": answer.text, "project": client.state().project_id}})
    print(json.dumps(out))
""")


@pytest.fixture
def emu(monkeypatch):
    from keyward.emulator import Emulator

    emu = Emulator().start()
    for pid, number in PROJECTS:
        emu.add_project(pid, number, limits={MODEL: {"rpm": 1, "tpm": 100000, "rpd": 100}})
    yield emu
    emu.stop()


def _status(config):
    from keyward.context import Context
    from keyward.status import build_status

    with Context.load(str(config)) as ctx:
        return build_status(ctx)


def test_genai_program_when_429_with_daemon_switches_key_and_counts_each_answer_once(tmp_path, emu, kw_env):
    env = {**kw_env, "KEYWARD_GOOGLE_EMULATOR_HOST": emu.address}
    config = write_config(tmp_path, PROJECTS)
    text = config.read_text().replace('ingest_socket = ""', f'ingest_socket = "{tmp_path}/run/ingest.sock"')
    config.write_text(text.replace("[usage]\n", "[usage]\nmonitoring = false\n"))
    daemon = DaemonProcess(config, env)
    try:
        wait_for(lambda: (tmp_path / "run" / "ingest.sock").exists() and all(
            any(k["state"] == "active" for k in p["keys"]) for p in _status(config)["projects"])
            and (tmp_path / "run" / "default.key").exists(), 60, "both projects keyed and a key published")
        program_env = {**env, "KEYWARD_CONFIG": str(config),
                       # the program may not write the database: only the daemon can take its reports
                       "KEYWARD_DATABASE_URL": "sqlite:////nonexistent/keyward.db",
                       "XDG_STATE_HOME": str(tmp_path / "program-state")}
        result = subprocess.run([sys.executable, "-c", PROGRAM], env=program_env, capture_output=True,
                                text=True, timeout=120)
        assert result.returncode == 0, result.stderr + daemon.log
        first, second = json.loads(result.stdout)
        assert "emulated answer" in first["text"] and "emulated answer" in second["text"]
        assert first["project"] != second["project"]
        used = {p["project_id"]: p["usage"]["rpm"]["used"] for p in _status(config)["projects"]}
        assert used == {PROJECTS[0][0]: 1, PROJECTS[1][0]: 1}
        assert sum(1 for call in emu.state.calls if call.counted) == 2
        assert not (tmp_path / "program-state" / "keyward" / "spool" / "reports.jsonl").exists()
    finally:
        daemon.stop()
