"""The admin endpoints, driven over HTTP as another process would, and `serve()` as a process."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from emulator_helpers import http

from keyward.emulator import Emulator


@pytest.fixture
def bare():
    emulator = Emulator().start()
    yield emulator
    emulator.stop()


def _admin(emu, path, body=None, method=None):
    return http(f"{emu.url}/_emulator/{path}", method or ("POST" if body is not None else "GET"),
                body)


def _gemini(emu, key):
    return http(f"{emu.url}/v1beta/models/gemini-2.5-flash:generateContent", "POST",
                {"contents": [{"parts": [{"text": "hi"}]}]}, {"x-goog-api-key": key})


def test_admin_when_project_and_key_created_gemini_accepts_key(bare):
    status, project = _admin(bare, "projects", {
        "projectId": "gamma", "number": "444", "limits": {"gemini-2.5-flash": {"rpm": 1}}})
    assert status == 200 and project["number"] == "444"
    status, key = _admin(bare, "keys", {"projectId": "gamma", "displayName": "manual"})
    assert status == 200 and key["keyString"].startswith("AQ.")
    assert _admin(bare, "keys:check", {"keyString": key["keyString"]})[1] == {"valid": True}
    assert _gemini(bare, key["keyString"])[0] == 200
    assert _gemini(bare, key["keyString"])[0] == 429
    status, listed = http(f"{bare.url}/_emulator/keys?projectId=gamma")
    assert [k["displayName"] for k in listed["keys"]] == ["manual"]
    assert "keyString" not in listed["keys"][0]


def test_admin_when_clock_advanced_moves_emulator_time(bare):
    before = bare.now()
    status, body = _admin(bare, "clock", {"advanceSeconds": 3600})
    assert status == 200 and body["now"] >= before + 3600


def test_admin_when_iam_services_policy_set_apply_to_apis(bare):
    _admin(bare, "projects", {"projectId": "gamma", "number": "444"})
    _admin(bare, "iam", {"projectId": "gamma", "permission": "apikeys.keys.list"})
    _admin(bare, "services", {"projectId": "gamma", "service": "monitoring.googleapis.com"})
    _admin(bare, "policy", {"projectId": "gamma"})
    state = _admin(bare, "state")[1]
    project = state["projects"][0]
    assert project["deniedPermissions"] == ["apikeys.keys.list"]
    assert project["disabledServices"] == ["monitoring.googleapis.com"]
    assert project["serviceAccountKeysBlocked"] is True
    status, body = http(f"{bare.url}/v2/projects/gamma/locations/global/keys")
    assert status == 403 and body["error"]["details"][0]["reason"] == "IAM_PERMISSION_DENIED"


def test_admin_when_fault_and_settings_posted_take_effect(bare):
    _admin(bare, "projects", {"projectId": "gamma", "number": "444"})
    assert _admin(bare, "faults", {"service": "apikeys", "status": 429})[0] == 200
    assert http(f"{bare.url}/v2/projects/gamma/locations/global/keys")[0] == 429
    settings = _admin(bare, "settings", {"operationPolls": 0, "rejectStandardKeys": False})[1]
    assert settings["operationPolls"] == 0 and settings["rejectStandardKeys"] is False
    status, op = http(f"{bare.url}/v2/projects/gamma/locations/global/keys", "POST", {})
    assert http(f"{bare.url}/v2/{op['name']}")[1]["done"] is True


def test_admin_when_strictness_settings_posted_take_effect(bare):
    _admin(bare, "projects", {"projectId": "gamma", "number": "444"})
    settings = _admin(bare, "settings", {"operationPolls": 5, "operationSeconds": 600,
                                         "alreadyExistsIn": "call"})[1]
    assert (settings["operationSeconds"], settings["alreadyExistsIn"]) == (600.0, "call")
    keys = f"{bare.url}/v2/projects/gamma/locations/global/keys"
    http(f"{keys}?keyId=taken", "POST", {})
    assert http(f"{keys}/taken")[0] == 404, "invisible until its operation is done"
    assert http(f"{keys}?keyId=taken", "POST", {})[0] == 409
    assert _admin(bare, "settings", {"alreadyExistsIn": "nowhere"})[0] == 400


def test_admin_when_reset_forgets_everything(bare):
    _admin(bare, "projects", {"projectId": "gamma", "number": "444"})
    assert _admin(bare, "reset", {})[0] == 200
    assert _admin(bare, "state")[1]["projects"] == []


@pytest.mark.parametrize("path,body", [("projects", {"projectId": "x"}),
                                       ("keys", {"projectId": "missing"}),
                                       ("faults", {"status": 200})])
def test_admin_when_body_bad_is_rpc_error(bare, path, body):
    status, error = _admin(bare, path, body)
    assert status in (400, 404) and error["error"]["status"] in ("INVALID_ARGUMENT", "NOT_FOUND")


def test_state_when_keys_exist_never_shows_key_strings(bare):
    bare.add_project("gamma", "444")
    secret = bare.create_manual_key("gamma")["keyString"]
    status, body = _admin(bare, "state")
    assert status == 200 and secret not in str(body)


def test_serve_when_run_as_process_prints_port_and_answers():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(
        [sys.executable, "-c", "from keyward.emulator import serve; serve(port=0)"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("emulator listening on 127.0.0.1:")
        address = line.rsplit(" ", 1)[1]
        status, body = http(f"http://{address}/_emulator/state")
        assert status == 200 and body["projects"] == []
    finally:
        proc.terminate()
        deadline = time.monotonic() + 10
        proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == 0
