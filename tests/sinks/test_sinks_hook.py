"""The post-publish hook: what the command receives, and how its failures are contained."""

from __future__ import annotations

import json
import logging
import os
import sys
import time

import pytest
from sink_contract import new_fake_key

from keyward.sinks.hook import OUTPUT_LOG_LIMIT, run_post_publish
from keyward.sinks.null import NullSink
from support.processes import alive


def _py(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_run_post_publish_when_command_runs_gets_pool_and_key_id_not_key(tmp_path):
    key = new_fake_key()
    NullSink("default").publish(key, "key-7")
    out = tmp_path / "env.json"
    ok = run_post_publish(
        _py(f"import json, os, sys; json.dump(dict(os.environ), open({str(out)!r}, 'w'))"),
        "default", "key-7", timeout=30,
    )
    assert ok is True
    env = json.loads(out.read_text())
    assert (env["KEYWARD_POOL"], env["KEYWARD_KEY_ID"]) == ("default", "key-7")
    assert key not in out.read_text()


def test_run_post_publish_when_command_reads_stdin_sees_it_closed():
    assert run_post_publish(_py("import sys; sys.exit(len(sys.stdin.read()))"), "p", "k", timeout=30)


def test_run_post_publish_when_command_fails_returns_false_and_warns(caplog):
    with caplog.at_level(logging.WARNING, logger="keyward.sinks.hook"):
        ok = run_post_publish(_py("import sys; sys.exit(3)"), "ci", "k", timeout=30)
    assert ok is False
    assert "for pool ci failed with exit status 3" in caplog.text


def test_run_post_publish_when_command_missing_returns_false_and_warns(caplog, tmp_path):
    with caplog.at_level(logging.WARNING, logger="keyward.sinks.hook"):
        ok = run_post_publish([str(tmp_path / "no-such-hook")], "ci", "k", timeout=30)
    assert ok is False
    assert "no-such-hook for pool ci could not start" in caplog.text


@pytest.mark.parametrize("argv", [[], "", "unbalanced 'quote"])
def test_run_post_publish_when_argv_unusable_returns_false(argv):
    assert run_post_publish(argv, "ci", "k", timeout=30) is False


def test_run_post_publish_when_argv_is_a_string_splits_without_shell(tmp_path):
    marker = tmp_path / "ran;touch"
    ok = run_post_publish(f"{sys.executable} -c 'import sys; open(sys.argv[1], \"w\")' '{marker}'",
                          "p", "k", timeout=30)
    assert ok and marker.exists()


def test_run_post_publish_when_command_hangs_kills_it_and_its_children(tmp_path, caplog):
    pid_file = tmp_path / "child.pid"
    code = (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
        f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
        "time.sleep(120)\n"
    )
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="keyward.sinks.hook"):
        ok = run_post_publish(_py(code), "ci", "k", timeout=5.0)  # room to start its child first
    assert ok is False
    assert time.monotonic() - started < 30
    assert "for pool ci timed out after 5s and was killed" in caplog.text
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while alive(child):
        assert time.monotonic() < deadline, "the hook's child survived the timeout"
        time.sleep(0.01)


def test_run_post_publish_when_output_long_logs_it_truncated_at_debug(caplog):
    with caplog.at_level(logging.DEBUG, logger="keyward.sinks.hook"):
        assert run_post_publish(_py("print('x' * 50000)"), "p", "k", timeout=30)
    records = [r.getMessage() for r in caplog.records if "output" in r.getMessage()]
    assert len(records) == 1
    assert len(records[0]) < OUTPUT_LOG_LIMIT + 200
    assert "more characters" in records[0]


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="needs /proc")
def test_alive_when_process_exists_is_true():
    assert alive(os.getpid())


def test_run_post_publish_when_command_fails_warns_with_its_output_redacted(caplog):
    key = new_fake_key("auth")
    code = f"import sys; print('Failed to try-restart my-app.service: Access denied'); print({key!r}); sys.exit(4)"
    with caplog.at_level(logging.WARNING, logger="keyward.sinks.hook"):
        assert run_post_publish(_py(code), "ci", "k", timeout=30) is False
    [record] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "exit status 4" in record.getMessage() and "Access denied" in record.getMessage()
    assert key not in caplog.text and key[-4:] in caplog.text
