from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from keyward import inventory
from keyward.config import load_config
from keyward.context import Context
from keyward.status_socket import CACHE_SECONDS, StatusCache, StatusServer, fetch, pretty, socket_path
from support.fakes import fake_auth_key


def _world(tmp_path: Path) -> tuple[Context, dict[str, str]]:
    env = {"KEYWARD_STATE_DIR": str(tmp_path / "state"), "KEYWARD_RUNTIME_DIR": str(tmp_path / "run"),
           "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    ctx = Context(load_config(None, env=env))
    inventory.add_project(ctx, "alpha-project-1")
    return ctx, env


def test_fetch_when_daemon_serves_status_returns_compact_json_that_follows_changes(tmp_path):
    ctx, _ = _world(tmp_path)
    secret = fake_auth_key()
    inventory.add_key(ctx, "alpha-project-1", secret)
    server = StatusServer(lambda: ctx, socket_path(ctx.config.runtime_dir)).start()
    try:
        text = fetch(ctx.config.runtime_dir)
        assert text is not None and secret not in text
        data = json.loads(text)
        assert data["schema_version"] == 1
        assert [p["project_id"] for p in data["projects"]] == ["alpha-project-1"]
        assert "\n" not in text and text.startswith("{\"schema_version\":1,")  # compact
        inventory.add_project(ctx, "bravo-project-2")  # cached for at most CACHE_SECONDS
        deadline = time.monotonic() + 10 * CACHE_SECONDS
        while len(json.loads(fetch(ctx.config.runtime_dir))["projects"]) != 2:
            assert time.monotonic() < deadline, "the daemon's status never showed the new project"
            time.sleep(0.05)
    finally:
        server.stop()
        ctx.close()
    assert fetch(tmp_path / "run") is None and not os.path.exists(socket_path(tmp_path / "run"))


def test_status_command_when_daemon_answers_imports_no_sqlalchemy(tmp_path):
    ctx, env = _world(tmp_path)
    server = StatusServer(lambda: ctx, socket_path(ctx.config.runtime_dir)).start()
    probe = ("import sys\nfrom keyward.cli import main\ntry:\n    main(['status', '--json'])\nexcept SystemExit:\n"
             "    pass\nsys.stderr.write(repr([m for m in ('click', 'sqlalchemy') if m in sys.modules]))\n")
    try:
        result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                                env={**os.environ, **env}, timeout=60)
        screen = subprocess.run([sys.executable, "-m", "keyward", "status", "--no-color"], capture_output=True,
                                text=True, env={**os.environ, **env}, timeout=60)
    finally:
        server.stop()
        ctx.close()
    assert result.stderr == "[]"
    assert json.loads(result.stdout)["projects"][0]["project_id"] == "alpha-project-1"
    assert screen.returncode == 0 and "alpha-project-1" in screen.stdout


def test_status_command_when_no_daemon_builds_it_from_the_database(tmp_path):
    ctx, env = _world(tmp_path)
    ctx.close()
    result = subprocess.run([sys.executable, "-m", "keyward", "status", "--json"], capture_output=True,
                            text=True, env={**os.environ, **env}, timeout=60)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["projects"][0]["project_id"] == "alpha-project-1"
    assert data["daemon"]["running"] is False


def test_status_cache_when_asked_within_max_age_reuses_the_text_then_rebuilds():
    now = [100.0]
    built: list[int] = []
    cache = StatusCache(lambda: built.append(1) or f"status {len(built)}", max_age=1.0, clock=lambda: now[0],
                        spawn=lambda work: work())
    assert cache.get() == "status 1"
    now[0] += 0.5
    assert cache.get() == "status 1"
    now[0] += 0.6
    assert cache.get() == "status 2"
    cache.invalidate()
    assert cache.get() == "status 3" and cache.builds == 3


def test_status_cache_when_stale_answers_at_once_and_rebuilds_in_the_background():
    now = [0.0]
    release = threading.Event()
    texts = iter(["first", "second"])

    def build() -> str:
        text = next(texts)
        if text == "second":
            assert release.wait(10)
        return text

    cache = StatusCache(build, max_age=1.0, clock=lambda: now[0])
    assert cache.get() == "first"
    now[0] += 5
    assert cache.get() == "first"  # stale: served while the rebuild waits
    assert cache.get() == "first" and cache.builds == 1  # one rebuild at a time
    release.set()
    deadline = time.monotonic() + 10
    while cache.get() != "second":
        assert time.monotonic() < deadline, "the background rebuild never landed"
        time.sleep(0.01)


def test_status_cache_when_a_rebuild_fails_keeps_the_last_text():
    now = [0.0]
    calls = []

    def build() -> str:
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("database went away")
        return f"status {len(calls)}"

    cache = StatusCache(build, max_age=1.0, clock=lambda: now[0], spawn=lambda work: work())
    assert cache.get() == "status 1"
    now[0] += 2
    assert cache.get() == "status 1"
    assert cache.get() == "status 3"


def test_status_cache_when_many_ask_during_a_build_builds_once():
    release = threading.Event()
    started = threading.Event()

    def slow_build() -> str:
        started.set()
        assert release.wait(10)
        return "the status"

    cache = StatusCache(slow_build, max_age=60)
    answers: list[str] = []
    threads = [threading.Thread(target=lambda: answers.append(cache.get())) for _ in range(8)]
    threads[0].start()
    assert started.wait(10)
    for t in threads[1:]:
        t.start()
    release.set()
    for t in threads:
        t.join(10)
    assert answers == ["the status"] * 8 and cache.builds == 1


def test_pretty_when_given_compact_status_indents_and_sorts_keys():
    assert pretty('{"b":1,"a":[2]}') == '{\n  "a": [\n    2\n  ],\n  "b": 1\n}'
